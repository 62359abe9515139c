"""Channels-last conversion and the strided 1x1 layers it computes by subsampling
(``unnas.memory_format``: oneDNN's NHWC weight gradient for them corrupts the heap on AVX2)."""

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from unnas.memory_format import SubsampledPointwiseConv2d, strided_pointwise_at_risk, to_channels_last


@pytest.mark.parametrize("cin,stride,side", [(2, 2, 16), (4, 2, 15), (7, (2, 1), 9), (12, 3, 10)])
@pytest.mark.parametrize("bias", [False, True])
def test_subsampled_equals_the_strided_convolution(cin, stride, side, bias):
    torch.manual_seed(0)
    plain = nn.Conv2d(cin, 5, 1, stride, bias=bias).double()
    ours = SubsampledPointwiseConv2d(cin, 5, 1, stride, bias=bias).double()
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(3, cin, side, side + 1, dtype=torch.float64)
    grads = []
    for conv in (plain, ours):
        xi = x.clone().requires_grad_()
        y = conv(xi)
        (y * torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape).cos()).sum().backward()
        grads.append((y.detach(), xi.grad, *(p.grad for p in conv.parameters())))
    for a, b in zip(*grads):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_to_channels_last_swaps_exactly_the_at_risk_layers():
    net = nn.Sequential(
        nn.Conv2d(4, 8, 1, 2, bias=False),  # at risk
        nn.Conv2d(15, 8, 1, (1, 2)),  # at risk (a stride along one side is a stride)
        nn.Conv2d(16, 8, 1, 2),  # a full channel block
        nn.Conv2d(4, 8, 1, 1),  # unit stride: no workspace copy
        nn.Conv2d(4, 8, 3, 2, 1),  # not 1x1
        nn.Conv2d(4, 8, 1, 2, groups=2),  # grouped: another kernel
        nn.Conv2d(4, 8, 1, 2, padding=1),  # padded
    )
    keys = list(net.state_dict())
    out = to_channels_last(net)
    assert out is net
    assert [type(m) is SubsampledPointwiseConv2d for m in net] == [True, True] + [False] * 5
    assert list(net.state_dict()) == keys and net[0].stride == (2, 2)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in net.parameters() if p.dim() == 4)
    assert not any(strided_pointwise_at_risk(m) for m in net)


def test_3d_networks_are_left_alone():
    net = nn.Sequential(nn.Conv3d(2, 4, 1), nn.Conv2d(4, 8, 1, 2))
    to_channels_last(net)
    assert type(net[1]) is nn.Conv2d


def test_training_the_crashing_shape_in_nhwc_is_safe_and_exact():
    """The oneDNN shape (4 -> 8 channels, 1x1, stride 2, float32 NHWC, one thread): a plain
    ``.to(channels_last)`` aborts within a few steps on an AVX2 CPU, so it runs in a child process;
    through ``to_channels_last`` it trains and its weight gradient matches float64 NCHW."""
    code = textwrap.dedent("""
        import torch
        from torch import nn
        from unnas.memory_format import to_channels_last
        torch.set_num_threads(1)
        torch.manual_seed(0)
        conv = to_channels_last(nn.Conv2d(4, 8, 1, 2, bias=False))
        ref = nn.Conv2d(4, 8, 1, 2, bias=False).double()
        ref.load_state_dict(conv.state_dict())
        worst = 0.0
        for _ in range(30):
            x = torch.randn(32, 4, 16, 16)
            conv.weight.grad = ref.weight.grad = None
            conv(x.contiguous(memory_format=torch.channels_last)).square().sum().backward()
            ref(x.double()).square().sum().backward()
            worst = max(worst, ((conv.weight.grad.double() - ref.weight.grad).abs().max()
                                / ref.weight.grad.abs().max()).item())
        print(worst)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert float(done.stdout.split()[-1]) < 1e-5
