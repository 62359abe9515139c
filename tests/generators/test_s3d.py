"""The S3D design space: torchvision's S3D reproduced, the convolution kinds and gating by hand, named
points, top-heavy / bottom-heavy populations, FLOPs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unnas.errors import UserError
from unnas.generators.complexity import complexity, count_flops, count_params
from unnas.generators.s3d import Gate, S3DGenerator, STConv
from unnas.population import sample_population
from unnas.spec import ArchSpec, build


def test_full_size_s3d_is_torchvisions():
    """Default parameters = torchvision's ``s3d``: 8,320,048 parameters with a 400-class classifier,
    the same parameter tensors (sizes) and the same FLOPs on a 16 x 224 x 224 clip."""
    import torchvision

    tv = torchvision.models.video.s3d(weights=None)  # built here, nothing downloaded
    ours = build(ArchSpec("s3d", {"variant": "s3d"}), 3, num_classes=400)
    assert count_params(tv) == count_params(ours) == 8_320_048
    sizes = lambda m: sorted(p.numel() for n, p in m.named_parameters() if not n.startswith("classifier"))  # noqa: E731
    assert sizes(tv) == sizes(ours)
    with torch.device("meta"):
        tv, ours = torchvision.models.video.s3d(weights=None), build(ArchSpec("s3d", {}), 3)
    assert count_flops(ours, (1, 16, 3, 224, 224)) == count_flops(tv.features, (1, 3, 16, 224, 224))
    assert complexity(ArchSpec("s3d", {}), 3, 224, 16)["flops"] == count_flops(tv.features, (1, 3, 16, 224, 224))
    assert ours.forward_features(torch.zeros(1, 16, 3, 224, 224, device="meta")).shape == (1, 1024, 2, 7, 7)


def _identity_bn(module):
    """BN layers in eval mode that pass values through unchanged (running var = 1 - eps)."""
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.zero_()
            m.running_var.fill_(1 - m.eps)
    return module.eval()


def test_separable_conv_equals_its_two_factors():
    """1 x k x k then k x 1 x 1 (BN identity, positive values so the ReLUs pass them) is the full 3D
    convolution with the outer-product kernel; an impulse comes out as that kernel."""
    sep = _identity_bn(STConv("sep", 1, 1, 3))
    spatial = torch.tensor([[1.0, 2.0, 1.0], [0.0, 3.0, 1.0], [2.0, 1.0, 4.0]])
    temporal = torch.tensor([1.0, 5.0, 2.0])
    with torch.no_grad():
        sep[0][0].weight.copy_(spatial.view(1, 1, 1, 3, 3))
        sep[1][0].weight.copy_(temporal.view(1, 1, 3, 1, 1))
        impulse = torch.zeros(1, 1, 5, 5, 5)
        impulse[0, 0, 2, 2, 2] = 1.0
        out = sep(impulse)[0, 0, 1:4, 1:4, 1:4]
        # a correlation flips the kernel for an impulse: out[t, i, j] = temporal[2-t] * spatial[2-i, 2-j]
        kernel = temporal.flip(0)[:, None, None] * spatial.flip(0, 1)[None]
        assert torch.allclose(out, kernel)
        x = torch.rand(1, 1, 6, 7, 7, generator=torch.Generator().manual_seed(0))
        ref = torch.nn.functional.conv3d(x, (temporal[:, None, None] * spatial[None])[None, None], padding=1)
        assert torch.allclose(sep(x), ref, atol=1e-5)


@pytest.mark.parametrize("kind,kernels", [("2d", [(1, 3, 3)]), ("3d", [(3, 3, 3)]), ("sep", [(1, 3, 3), (3, 1, 1)])])
def test_kinds_kernels_and_flops_by_hand(kind, kernels):
    conv = STConv(kind, 4, 6, 3)
    assert [m.kernel_size for m in conv.modules() if isinstance(m, torch.nn.Conv3d)] == kernels
    t, h, w = 5, 7, 7
    expected = {"2d": 2 * 4 * 9 * 6 * t * h * w, "3d": 2 * 4 * 27 * 6 * t * h * w,
                "sep": 2 * 4 * 9 * 6 * t * h * w + 2 * 6 * 3 * 6 * t * h * w}[kind]
    assert count_flops(conv, (1, 4, t, h, w)) == expected


def test_gate_by_hand():
    g = Gate(2)
    with torch.no_grad():
        g.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, -2.0]]))
        g.fc.bias.copy_(torch.tensor([0.0, 1.0]))
    x = torch.tensor([1.0, 3.0]).view(1, 2, 1, 1, 1).expand(1, 2, 2, 1, 1).clone()
    x[0, 0, 1] = 3.0  # channel 0: mean 2; channel 1: mean 3
    want = x * torch.sigmoid(torch.tensor([2.0, -5.0])).view(1, 2, 1, 1, 1)
    assert torch.allclose(g(x), want)


def _kinds(params):
    gen = S3DGenerator()
    return gen.blocks(gen.resolve(params))


def test_named_points_by_hand():
    # 11 blocks: stem, the 1x1 + 3x3 block, Mixed_3b-3c, Mixed_4b-4f, Mixed_5b-5c
    assert _kinds({"variant": "i3d"}) == (["3d"] * 11, [False] * 11)
    assert _kinds({"variant": "s3d"}) == (["sep"] * 11, [False] * 11)
    assert _kinds({"variant": "s3d-g"}) == (["sep"] * 11, [False] + [True] * 10)
    assert _kinds({"variant": "top-heavy"})[0] == ["2d"] * 4 + ["sep"] * 7
    assert _kinds({"variant": "bottom-heavy"})[0] == ["sep"] * 4 + ["2d"] * 7
    assert _kinds({"variant": "top-heavy", "temporal": "3d"})[0] == ["2d"] * 4 + ["3d"] * 7  # top-heavy I3D
    assert _kinds({"variant": "top-heavy", "depths": [1, 1, 1]})[0] == ["2d"] * 3 + ["sep"] * 2
    assert _kinds({"temporal_conv_start": 2, "temporal_conv_stop": 5, "gating_start": 9})[1] == [False] * 9 + [True] * 2
    assert _kinds({"convs": ["2d", "3d"] * 5 + ["sep"]})[0] == ["2d", "3d"] * 5 + ["sep"]
    net = build(ArchSpec("s3d", {"variant": "top-heavy", "width": 0.0625, "stem": "small"}), 1)
    assert net.structure == "stem=small width=0.0625 depths=[2, 5, 2] convs=2222sssssss gates=-----------"
    gates = [m for m in build(ArchSpec("s3d", {"variant": "s3d-g", "width": 0.0625}), 1).modules() if isinstance(m, Gate)]
    assert len(gates) == 1 + 9 * 4  # block 1, and the four branches of every Inception block


def test_top_and_bottom_heavy_populations():
    top = sample_population("s3d", 12, 0, {"temporal_conv_stop": -1}, in_channels=1, image_size=16, frames=8)
    bottom = sample_population("s3d", 12, 0, {"temporal_conv_start": 0}, in_channels=1, image_size=16, frames=8)
    for specs, first, last in ((top, "2d", "temporal"), (bottom, "temporal", "2d")):
        for s in specs:
            convs, _ = _kinds(s.params)
            kinds = ["2d" if k == "2d" else "temporal" for k in convs]
            assert kinds[0] == first and kinds[-1] == last
            assert kinds == sorted(kinds, key=lambda k: (k != first))  # one switch, bottom to top
            assert s.seed == 0  # the seed does not change the network
    assert not {s.arch_id for s in top} & {s.arch_id for s in bottom}
    assert len({s.params["width"] for s in top + bottom}) > 1 and len({str(s.params["depths"]) for s in top}) > 1


def test_bad_parameters_are_one_line():
    gen = S3DGenerator()
    for params, field in [({"variant": "c3d"}, "variant"), ({"temporal": "4d"}, "temporal"),
                          ({"temporal_conv_start": 5, "temporal_conv_stop": 3}, "temporal_conv_stop"),
                          ({"convs": ["2d"]}, "convs"), ({"depths": [2, 0, 2]}, "depths"),
                          ({"gating_start": 11}, "gating_start"), ({"width": 0.0}, "width"), ({"stem": "big"}, "stem")]:
        with pytest.raises(UserError, match=f"generator s3d parameter {field}") as e:
            gen.resolve(params)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"clips \(B, T, C, H, W\)"):
        build(ArchSpec("s3d", {"width": 0.0625}), 1).forward_features(torch.zeros(2, 1, 16, 16))


def test_clip_flops_scale_with_frames():
    spec = ArchSpec("s3d", {"width": 0.125, "stem": "small", "variant": "i3d"})
    f8, f16 = complexity(spec, 1, 16, 8)["flops"], complexity(spec, 1, 16, 16)["flops"]
    assert complexity(spec, 1, 16)["flops"] == f16  # the generator's default clip length
    assert 1.9 < f16 / f8 <= 2.0


def test_same_spec_same_network_and_seed_free():
    spec = ArchSpec("s3d", {"width": 0.0625, "stem": "small", "depths": [1, 1, 1]})
    torch.manual_seed(3)
    a = build(spec, 1).state_dict()
    torch.manual_seed(3)
    b = build(ArchSpec("s3d", spec.params, 7), 1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not S3DGenerator().uses_seed(spec.params)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 4, 1, 16, 16)).astype(np.float32))
    net = build(spec, 1).eval()
    assert net.pooled(x).shape == (2, net.num_features)
