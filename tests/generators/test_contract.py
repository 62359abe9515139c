"""The Backbone contract, checked for every registered generator (small parameters). Video generators
take clips (B, T, C, H, W) and return (B, C, t, h, w) maps."""

import random

import numpy as np
import pytest
import torch

from unnas.registry import GENERATORS
from unnas.spec import ArchSpec, build, get_generator

_NDS_CELL = {"width": 4, "depth": 3}
# small settings so that the whole parametrized test stays fast; unknown generators use defaults
SMALL = {
    "randwire-ws": {"nodes": 6, "k": 2, "channels": 8, "stages": 2},
    "randwire-er": {"nodes": 5, "channels": 8, "stages": 2, "p": 0.4},
    "randwire-ba": {"nodes": 5, "channels": 8, "stages": 2, "m": 2},
    "relational-mlp": {"nodes": 8, "width": 16, "k": 3.0, "resolution": 8},
    "relational-resnet": {"nodes": 4, "k": 2.0, "width": 8, "depths": [1, 1]},
    "nb201": {"width": 0.25},
    "macro": {"width": 0.125},
    "anynet": {"widths": [8, 16, 16]},
    "nds-resnet": {"widths": [8, 8, 16]},
    "nds-resnext-a": {"widths": [8, 8, 16], "block": "bottleneck", "groups": [2, 2, 2]},
    "nds-resnext-b": {"widths": [8, 8, 16], "block": "bottleneck", "bottleneck": [2, 2, 2]},
    "timm": {"model": "resnet10t"},
    "s3d": {"width": 0.0625, "variant": "s3d-g", "temporal_conv_start": 1, "temporal_conv_stop": 5,
            "temporal": "3d", "depths": [1, 2, 1], "stem": "small"},
    **{f"nds-{s}": _NDS_CELL for s in ("darts", "enas", "pnas", "amoeba", "nasnet")},
}


def small(name: str) -> dict:
    return dict(SMALL.get(name, {}))


def sample(name: str, batch: int, channels: int, size: int) -> torch.Tensor:
    """A random input batch: images, or clips of 4 frames for a video generator."""
    video = getattr(get_generator(name), "data_kind", "image") == "video"
    return torch.randn(batch, *((4,) if video else ()), channels, size, size)


def _rng_states():
    return random.getstate(), np.random.get_state()[1].copy()


@pytest.mark.parametrize("name", GENERATORS.names())
@pytest.mark.parametrize("channels,size", [(3, 32), (1, 28)])
def test_backbone_contract(name, channels, size):
    spec = ArchSpec(name, small(name), seed=1)
    py_state, np_state = _rng_states()
    torch.manual_seed(0)
    net = build(spec, channels, num_classes=5)
    assert random.getstate() == py_state and (np.random.get_state()[1] == np_state).all(), "global RNG used"
    torch.manual_seed(0)
    again = build(spec, channels, num_classes=5)
    a, b = net.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "same spec + torch seed, other weights"

    x = sample(name, 4, channels, size)
    feats = net.forward_features(x)
    d = net.num_features
    if net.has_spatial:
        assert feats.dim() == x.dim() and feats.shape[:2] == (4, d) and min(feats.shape[2:]) >= 1
    else:
        assert feats.shape == (4, d)
    assert net.forward_head(feats, pre_logits=True).shape == (4, d)
    assert net.pooled(x).shape == (4, d)
    logits = net(x)
    assert logits.shape == (4, 5) and torch.isfinite(logits).all()

    torch.manual_seed(1)  # random projections: a plain sum is constant after a final BN
    loss = (feats * torch.randn_like(feats)).sum() + (logits * torch.randn_like(logits)).sum()
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None]
    assert missing == [], f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    # exact zeros are expected from NAS-Bench-201 `none` edges and from timm's
    # zero-initialised last BN of each residual branch; everywhere else a zero means a dead weight
    if not getattr(net, "has_zero_ops", False) and name != "timm":
        silent = [n for n, p in net.named_parameters() if not p.grad.abs().max() > 0]
        assert silent == [], f"parameters whose gradient is zero: {silent}"

    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


@pytest.mark.parametrize("name", GENERATORS.names())
def test_seeds_change_graphs_only_where_the_seed_matters(name):
    gen = get_generator(name)
    params = gen.resolve(small(name))
    structures = [getattr(build(ArchSpec(name, params, s), 3), "structure", None) for s in range(4)]
    if structures[0] is None:
        pytest.skip(f"{name} does not describe its structure")
    uses_seed = getattr(gen, "uses_seed", lambda p: True)(params)
    if uses_seed:
        assert len(set(structures)) > 1, structures
    else:
        assert len(set(structures)) == 1, structures


@pytest.mark.parametrize("name", GENERATORS.names())
def test_sampled_params_build(name):
    gen = get_generator(name)
    rng = np.random.default_rng(0)
    base = small(name)
    for _ in range(2):
        params = gen.sample_params(rng, base)
        assert params == gen.resolve(params)
        assert all(params[k] == v for k, v in base.items())
        net = build(ArchSpec(name, params, 3), 1)
        assert net.pooled(sample(name, 2, 1, 16)).shape == (2, net.num_features)
