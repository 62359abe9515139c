"""Weight gradients by shifted matrix products (``unnas.conv_grad``) and the layers that use them."""

import pytest
import torch
from torch import nn

from unnas.conv_grad import ShiftedGradConv2d, shifted_weight_grad, uses_shifted_grad
from unnas.memory_format import SubsampledPointwiseConv2d, to_channels_last


def test_hand_computed_weight_gradient():
    # a 3x3 kernel, padding 1, on the 2x2 image [[1, 2], [3, 4]], output gradient all ones: tap (i, j)
    # sums the pixels it reads over the four outputs
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    g = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    gw = shifted_weight_grad(x, g, (3, 3), (1, 1), (1, 1))
    assert gw.tolist() == [[[[1.0, 3.0, 2.0], [4.0, 10.0, 6.0], [3.0, 7.0, 4.0]]]]


@pytest.mark.parametrize("k,stride,padding,size", [
    (1, (1, 1), (0, 0), (5, 6)), (1, (2, 2), (0, 0), (7, 7)), (3, (1, 1), (1, 1), (4, 5)),
    (3, (2, 2), (1, 1), (9, 8)), (3, (2, 1), (0, 1), (7, 6)), (5, (1, 1), (2, 2), (6, 6)), (5, (2, 2), (1, 2), (11, 9)),
])
@pytest.mark.parametrize("channels_last", [False, True])
def test_equals_autograd_in_float64(k, stride, padding, size, channels_last):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, *size, dtype=torch.float64, generator=gen)
    w = torch.randn(6, 4, k, k, dtype=torch.float64, generator=gen, requires_grad=True)
    y = nn.functional.conv2d(x, w, None, stride, padding)
    g = torch.randn(y.shape, dtype=torch.float64, generator=gen)
    (ref,) = torch.autograd.grad(y, w, g)
    if channels_last:
        x, g = (t.contiguous(memory_format=torch.channels_last) for t in (x, g))
    got = shifted_weight_grad(x, g, (k, k), stride, padding)
    assert got.shape == ref.shape and got.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


def _pair(cin, cout, k, stride, pad, bias):
    torch.manual_seed(0)
    plain = nn.Conv2d(cin, cout, k, stride, pad, bias=bias).to(memory_format=torch.channels_last)
    ours = nn.Conv2d(cin, cout, k, stride, pad, bias=bias).to(memory_format=torch.channels_last)
    ours.load_state_dict(plain.state_dict())
    ours.__class__ = ShiftedGradConv2d
    return plain, ours


@pytest.mark.parametrize("k,stride,pad,side,bias", [(3, 1, 1, 4, False), (3, 2, 1, 8, True), (1, 1, 0, 8, True)])
def test_bfloat16_layer_matches_onednn(k, stride, pad, side, bias, monkeypatch):
    """Under bfloat16 autocast: the same forward values and input gradient as ``nn.Conv2d`` (both
    oneDNN's), the weight and bias gradients equal up to bfloat16 rounding, and both as close to the
    float64 gradient; the shifted products did run."""
    import unnas.conv_grad as cg

    calls = []
    real = cg.shifted_weight_grad
    monkeypatch.setattr(cg, "shifted_weight_grad", lambda *a: calls.append(1) or real(*a))
    plain, ours = _pair(128, 128, k, stride, pad, bias)
    x = torch.randn(4, 128, side, side).contiguous(memory_format=torch.channels_last)
    outs = []
    for conv in (plain, ours):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv(xi)
        (y.float() * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
        outs.append((y, xi.grad, conv.weight.grad, conv.bias.grad if bias else None))
    assert calls == [1]
    (y0, gx0, gw0, gb0), (y1, gx1, gw1, gb1) = outs
    assert y1.dtype == torch.bfloat16 and torch.equal(y0, y1) and torch.equal(gx0, gx1)
    assert gw1.dtype == torch.float32 and gw1.is_contiguous(memory_format=torch.channels_last)
    xd, wd = x.double().requires_grad_(), plain.weight.detach().double().requires_grad_()
    yd = nn.functional.conv2d(xd.bfloat16().double(), wd.bfloat16().double(), None, stride, pad)
    (gwd,) = torch.autograd.grad((yd * torch.linspace(-1, 1, yd.numel(), dtype=torch.float64).reshape(yd.shape)).sum(),
                                 wd)
    scale = gwd.abs().max()
    for gw in (gw0, gw1):
        assert float((gw.double() - gwd).abs().max() / scale) < 8e-3  # bfloat16 rounds to 2^-8
    if bias:
        torch.testing.assert_close(gb1, gb0, rtol=1e-2, atol=1e-2 * float(gb0.abs().max()))


def test_rule_picks_only_small_bfloat16_training_calls():
    conv = ShiftedGradConv2d(512, 512, 3, 1, 1, bias=False)
    x4, x32 = torch.randn(2, 512, 4, 4), torch.randn(2, 512, 32, 32)
    assert not uses_shifted_grad(conv, x4)  # float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert uses_shifted_grad(conv, x4)
        assert not uses_shifted_grad(conv, x32)  # 1,024 output pixels
        with torch.no_grad():
            assert not uses_shifted_grad(conv, x4)  # no gradient will be taken
        conv.weight.requires_grad_(False)
        assert not uses_shifted_grad(conv, x4)  # a frozen (key-encoder) layer
        conv.weight.requires_grad_(True)
        thin = ShiftedGradConv2d(32, 128, 3, 1, 1)
        assert not uses_shifted_grad(thin, torch.randn(2, 32, 4, 4))  # few input channels
        narrow = ShiftedGradConv2d(128, 64, 3, 1, 1)
        assert not uses_shifted_grad(narrow, torch.randn(2, 128, 4, 4))  # few output channels
        pointwise = ShiftedGradConv2d(16, 32, 1, 2)
        assert uses_shifted_grad(pointwise, torch.randn(2, 16, 8, 8))  # 1x1 on 4 x 4 outputs, any width
        assert not uses_shifted_grad(pointwise, torch.randn(2, 16, 16, 16))  # 1x1 on 8 x 8
    assert uses_shifted_grad(conv.bfloat16(), x4.bfloat16())  # a bfloat16 model without autocast


def test_a_float64_model_under_bfloat16_autocast_stays_float64():
    """Autocast leaves float64 tensors alone, so the layer must too: same dtype, values and gradients
    as ``nn.Conv2d`` (a float64 BatchNorm after it rejects a bfloat16 input)."""
    torch.manual_seed(0)
    conv = ShiftedGradConv2d(512, 512, 3, 1, 1, bias=False).double()
    ref = nn.Conv2d(512, 512, 3, 1, 1, bias=False).double()
    ref.load_state_dict(conv.state_dict())
    x = torch.randn(2, 512, 4, 4, dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not uses_shifted_grad(conv, x)
        y, y0 = conv(x), ref(x)
        net = nn.Sequential(conv, nn.BatchNorm2d(512).double())
        net(x).sum().backward()
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, y0, rtol=0, atol=0)


def test_to_channels_last_swaps_plain_dense_convolutions_only():
    net = nn.Sequential(nn.Conv2d(4, 8, 1, 2), nn.Conv2d(8, 8, 3, 1, 1), nn.Conv2d(8, 8, 3, groups=2),
                        nn.Conv2d(8, 8, 3, dilation=2), nn.Conv2d(8, 8, 3, padding="same"),
                        nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"), nn.Conv2d(16, 8, 1, 2))
    keys = list(net.state_dict())
    to_channels_last(net)
    assert [type(m).__name__ for m in net] == ["SubsampledPointwiseConv2d", "ShiftedGradConv2d", "Conv2d", "Conv2d",
                                               "Conv2d", "Conv2d", "ShiftedGradConv2d"]
    assert list(net.state_dict()) == keys and isinstance(net[0], SubsampledPointwiseConv2d)


def test_a_float32_call_is_the_plain_convolution():
    plain, ours = _pair(8, 8, 3, 1, 1, True)
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(plain(x), ours(x))
