import math

import pytest
import torch
from torch import nn
from unnas.moco.splitbn import encode_split, grouped_forward, shuffled_forward, split_batch_norm, split_bn

from unnas.generators.resnet import ResNet


def test_split_bn_differs_from_full_batch_bn_exactly_as_expected():
    # samples 0..3, one channel, 1x1; groups are n % 2: {0, 2} = {0, 2} and {1, 3} = {10, 12}
    x = torch.tensor([0.0, 10.0, 2.0, 12.0]).view(4, 1, 1, 1)
    bn = nn.BatchNorm2d(1, eps=1e-12, momentum=0.1)
    split = split_batch_norm(x, bn, 2)
    torch.testing.assert_close(split.flatten(), torch.tensor([-1.0, -1.0, 1.0, 1.0]))
    # running stats: mean of the group means (1, 11) and of the unbiased group variances (2, 2)
    assert bn.running_mean.item() == pytest.approx(0.1 * 6.0)
    assert bn.running_var.item() == pytest.approx(0.9 + 0.1 * 2.0)
    assert int(bn.num_batches_tracked) == 1
    full_bn = nn.BatchNorm2d(1, eps=1e-12, momentum=0.1)
    full = full_bn(x)  # mean 6, biased variance 26
    torch.testing.assert_close(full.flatten(), torch.tensor([-6.0, 4.0, -4.0, 6.0]) / math.sqrt(26.0))
    assert full_bn.running_var.item() == pytest.approx(0.9 + 0.1 * 104.0 / 3.0)


def test_split_bn_matches_per_group_batch_norm_with_affine_parameters():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 3, 4, 5, generator=g)
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 2.0, -1.0]))
        bn.bias.copy_(torch.tensor([1.0, 0.0, 3.0]))
    out = split_batch_norm(x, bn, 3)
    for grp in range(3):
        xs = x[grp::3]
        mean = xs.mean(dim=(0, 2, 3), keepdim=True)
        var = xs.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        ref = (xs - mean) / torch.sqrt(var + bn.eps) * bn.weight.view(1, 3, 1, 1) + bn.bias.view(1, 3, 1, 1)
        torch.testing.assert_close(out[grp::3], ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        split_batch_norm(x, bn, 5)


def test_channels_last_input_is_split_into_consecutive_chunks():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 3, 4, 4, generator=g).contiguous(memory_format=torch.channels_last)
    bn = nn.BatchNorm2d(3, momentum=0.5)
    out = split_batch_norm(x, bn, 2)
    means = []
    for chunk in range(2):
        xs = x[chunk * 4:(chunk + 1) * 4]
        mean = xs.mean(dim=(0, 2, 3), keepdim=True)
        var = xs.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        torch.testing.assert_close(out[chunk * 4:(chunk + 1) * 4], (xs - mean) / torch.sqrt(var + bn.eps),
                                   rtol=1e-5, atol=1e-5)
        means.append(mean.flatten())
    torch.testing.assert_close(bn.running_mean, 0.5 * (means[0] + means[1]) / 2)


def test_cumulative_average_when_momentum_is_none():
    bn = nn.BatchNorm1d(1, momentum=None)
    split_batch_norm(torch.tensor([[0.0], [10.0], [2.0], [12.0]]), bn, 2)  # group means 1, 11
    split_batch_norm(torch.tensor([[4.0], [4.0], [4.0], [4.0]]), bn, 2)  # group means 4, 4
    assert bn.running_mean.item() == pytest.approx((6.0 + 4.0) / 2)
    assert int(bn.num_batches_tracked) == 2


def test_patched_and_grouped_forward_agree_and_patch_is_removed():
    torch.manual_seed(0)
    a = ResNet([1, 1], 4, 2, None)
    b = ResNet([1, 1], 4, 2, None)
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 2, 6, 6)
    with split_bn(a, 4):
        ya = a.pooled(x)
    yb = grouped_forward(b.pooled, x, 4)
    torch.testing.assert_close(ya, yb, rtol=1e-4, atol=1e-5)
    assert all("forward" not in m.__dict__ for m in a.modules())
    # split output differs from plain full-batch BN
    assert not torch.allclose(ya, a.pooled(x), atol=1e-4)
    # running means: patched = average of group statistics; grouped = 4 sequential EMA updates
    assert torch.isfinite(a.stem[1].running_var).all()


def test_eval_mode_is_not_split():
    torch.manual_seed(0)
    net = ResNet([1], 4, 1, None).eval()
    x = torch.randn(4, 1, 5, 5)
    with split_bn(net, 2):
        y = net.pooled(x)
    torch.testing.assert_close(y, net.pooled(x))


class OwnForwardBN(nn.BatchNorm2d):
    def forward(self, x):
        return super().forward(x)


def test_unpatchable_layers_fall_back_to_grouped_forward():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 1), OwnForwardBN(2))
    x = torch.randn(6, 1, 3, 3)
    with pytest.raises(TypeError):
        with split_bn(net, 2):
            pass
    y = encode_split(net, net, x, 2)
    for g in range(2):
        torch.testing.assert_close(y[g::2], net(x[g::2]))


def test_shuffled_forward_returns_rows_in_the_original_order():
    x = torch.arange(8.0).view(8, 1)
    out = shuffled_forward(lambda v: v * 2, x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x * 2)

    def first_half_mean(v):  # depends on which samples share the first half of the batch
        return v - v[: v.shape[0] // 2].mean()

    a = shuffled_forward(first_half_mean, x, torch.Generator().manual_seed(1))
    b = shuffled_forward(first_half_mean, x, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, first_half_mean(x))


@pytest.mark.parametrize("affine,track", [(True, True), (False, True), (True, False)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_channels_last_split_bn_equals_batch_norm_of_each_chunk(affine, track, dtype):
    """One output written chunk by chunk: the values and input gradient of concatenating
    ``F.batch_norm`` of each chunk, bit for bit; parameter gradients and running statistics too."""
    gen = torch.Generator().manual_seed(0)
    x = (torch.randn(12, 5, 3, 4, generator=gen, dtype=torch.float64) * 2 + 1).to(dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    g = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(dtype)
    pdt = torch.float64 if dtype == torch.float64 else torch.float32
    ref_bn = nn.BatchNorm2d(5, affine=affine, track_running_stats=track).to(pdt)
    if affine:
        with torch.no_grad():
            ref_bn.weight.uniform_(0.5, 1.5, generator=gen)
            ref_bn.bias.normal_(generator=gen)
    bn = nn.BatchNorm2d(5, affine=affine, track_running_stats=track).to(pdt)
    bn.load_state_dict(ref_bn.state_dict())
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    chunks = xa.split(4)
    rms = [ref_bn.running_mean.clone() if track else None for _ in chunks]
    rvs = [ref_bn.running_var.clone() if track else None for _ in chunks]
    ref = torch.cat([torch.nn.functional.batch_norm(c, m, v, ref_bn.weight, ref_bn.bias, True, 0.1, 1e-5)
                     for c, m, v in zip(chunks, rms, rvs)])
    ref.backward(g)
    out = split_batch_norm(xb, bn, 3)
    out.backward(g)
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, ref) and torch.equal(xb.grad, xa.grad)
    if affine:
        torch.testing.assert_close(bn.weight.grad, ref_bn.weight.grad)
        torch.testing.assert_close(bn.bias.grad, ref_bn.bias.grad)
    if track:
        torch.testing.assert_close(bn.running_mean, torch.stack(rms).mean(0), rtol=0, atol=0)
        torch.testing.assert_close(bn.running_var, torch.stack(rvs).mean(0), rtol=0, atol=0)
