"""AnyNet / NDS ResNet-ResNeXt spaces and timm models."""

import numpy as np
import pytest
import timm
import torch

from unnas.errors import UserError
from unnas.generators import anynet
from unnas.generators.complexity import complexity, count_params
from unnas.generators.layers import draw, log_spaced
from unnas.spec import ArchSpec, build, get_generator


# ------------------------------------------------------------------------------------ AnyNet
def test_inner_width_rounds_to_groups():
    assert anynet.inner_width(64, 4, 1) == 16
    assert anynet.inner_width(56, 4, 4) == 16  # 14 -> nearest multiple of 4
    assert anynet.inner_width(16, 4, 8) == 8  # at least one channel per group


def test_bottleneck_network_params_by_hand():
    p = {"depths": [1, 1], "widths": [8, 16], "bottleneck": [2, 4], "groups": [2, 2], "block": "bottleneck",
         "stem_width": 4}
    net = build(ArchSpec("anynet", p), 3)
    stem = 3 * 4 * 9 + 8
    # stage 1: 4 -> 8, inner 4, groups 2: 1x1 4*4 + 3x3 (4/2)*4*9 + 1x1 4*8, three BNs, shortcut 4*8 + BN
    s1 = 16 + 8 + 72 + 8 + 32 + 16 + 32 + 16
    # stage 2: 8 -> 16 stride 2, inner 4, groups 2: 8*4 + 2*4*9 + 4*16, BNs, shortcut 8*16 + BN
    s2 = 32 + 8 + 72 + 8 + 64 + 32 + 128 + 32
    assert count_params(net) == stem + s1 + s2
    # FLOPs of the same net at 8x8: every conv is 2 * (Cin / groups) * k^2 * Cout * Hout * Wout; in
    # stage 2 the first 1x1 conv still runs at 8x8, the strided 3x3, last 1x1 and shortcut at 4x4
    flops = 2 * (3 * 9 * 4 * 64 + (16 + 72 + 32 + 32) * 64 + 32 * 64 + (72 + 64 + 128) * 16)
    assert complexity(net, 3, 8)["flops"] == flops


def test_basic_network_is_the_resnet_baseline():
    net = build(ArchSpec("anynet", {}), 3)
    ref = build(ArchSpec("resnet", {"depths": [1, 1, 1], "width": 16}), 3)
    assert count_params(net) == count_params(ref)
    assert complexity(net, 3, 32)["flops"] == complexity(ref, 3, 32)["flops"]


def test_nds_spaces_sample_per_stage_from_their_sets():
    rng = np.random.default_rng(0)
    for name, d, w, g in (("nds-resnet", log_spaced(1, 24, 9), log_spaced(16, 256, 12), {1}),
                          ("nds-resnext-a", [1, 2, 4, 8, 16], [16, 32, 64, 128, 256], {1, 2, 4}),
                          ("nds-resnext-b", [1, 2, 4, 8, 16], [64, 128, 256, 512, 1024], {1, 2, 4, 8, 16})):
        gen = get_generator(name)
        draws = [gen.sample_params(rng, {}) for _ in range(300)]
        assert {x for p in draws for x in p["depths"]} == set(d)
        assert {x for p in draws for x in p["widths"]} == set(w)
        assert all(len(p["depths"]) == 3 for p in draws)
        assert any(len(set(p["widths"])) > 1 for p in draws)  # stages are independent
        assert {x for p in draws for x in p["groups"]} == g
        if name == "nds-resnet":
            assert all(p["block"] == "basic" and p["bottleneck"] == [1, 1, 1] for p in draws)
        else:
            assert {x for p in draws for x in p["bottleneck"]} == {1, 2, 4}
    fixed = get_generator("anynet").sample_params(rng, {"depths": [2, 2, 2]})
    assert fixed["depths"] == [2, 2, 2]


def test_nds_space_sizes():
    """Configurations per space: (product over the per-stage value sets) ** 3 stages."""
    def size(name):
        space = get_generator(name).stage_space
        return int(np.prod([len(space[k][1]) for k in space])) ** 3

    assert log_spaced(1, 24, 9) == [1, 2, 3, 5, 7, 11, 16, 24]  # 1.0 and 1.49 both round to 1
    assert size("nds-resnet") == (8 * 12) ** 3
    assert size("nds-resnext-a") == 225 ** 3 == 11_390_625
    assert size("nds-resnext-b") == 375 ** 3 == 52_734_375


def test_samplers():
    rng = np.random.default_rng(3)
    pow2 = [draw(rng, ("pow2", 3, 40)) for _ in range(2000)]
    assert set(pow2) == {4, 8, 16, 32}
    logu = np.array([draw(rng, ("log_uniform", 1, 100)) for _ in range(4000)])
    assert logu.min() >= 1 and logu.max() <= 100
    assert 0.4 < np.mean(logu <= 10) < 0.6  # half the log range lies below 10
    uni = [draw(rng, ("uniform", 2, 4)) for _ in range(3000)]
    assert abs(np.mean(uni) - 3) < 0.05 and set(uni) == {2, 3, 4}


def test_anynet_bad_params():
    with pytest.raises(UserError, match="widths"):
        build(ArchSpec("anynet", {"widths": [8, 8]}), 3)
    with pytest.raises(UserError, match="block"):
        build(ArchSpec("anynet", {"groups": [2, 1, 1]}), 3)


# -------------------------------------------------------------------------------------- timm
def test_timm_resnet18_is_timms_model():
    net = build(ArchSpec("timm", {"model": "resnet18"}), 3, num_classes=1000)
    assert count_params(net) == 11_689_512  # torchvision / timm ResNet-18
    assert net.num_features == 512 and net.has_spatial
    x = torch.randn(2, 3, 64, 64)
    assert net.forward_features(x).shape == (2, 512, 2, 2)
    ref = timm.create_model("resnet18", pretrained=False, num_classes=0)
    ref.load_state_dict(net.model.state_dict())
    net.eval(), ref.eval()
    assert torch.allclose(net.pooled(x), ref(x), atol=1e-5)


def test_timm_small_stem():
    net = build(ArchSpec("timm", {"model": "resnet18", "stem": "small"}), 1, num_classes=1000)
    assert count_params(net) == 11_689_512 - 64 * 3 * 49 + 64 * 1 * 9
    assert net.forward_features(torch.randn(2, 1, 32, 32)).shape == (2, 512, 4, 4)


def test_timm_token_model_has_no_map():
    net = build(ArchSpec("timm", {"model": "vit_tiny_patch16_224", "img_size": 32}), 3)
    assert not net.has_spatial and net.num_features == 192
    assert net.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 192)


def test_timm_errors():
    with pytest.raises(UserError, match="model"):
        build(ArchSpec("timm", {"model": "no_such_net"}), 3)
    with pytest.raises(UserError, match="stem"):
        build(ArchSpec("timm", {"stem": "tiny"}), 3)


def test_anynet_stems():
    small = build(ArchSpec("anynet", {}), 3)
    assert small.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 64, 8, 8)
    big = build(ArchSpec("anynet", {"stem": "imagenet"}), 3)
    assert big.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 64, 4, 4)  # /4 stem, then /2 /2
