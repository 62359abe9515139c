"""Complexity: hand counts, and stored params / FLOPs / structure of one seeded spec per
generator so that accidental changes to a generator show up."""

import hashlib

import pytest
from torch import nn

from unnas.generators.complexity import complexity, count_flops, count_params
from unnas.spec import ArchSpec, build

# the specs: ArchSpec(name, SPECS.get(name, {}), seed=7)
_NDS_CELL = {"width": 4, "depth": 3}
SPECS = {
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
    **{f"nds-{s}": _NDS_CELL for s in ("darts", "enas", "pnas", "amoeba", "nasnet")},
}

# (params, FLOPs at 3x32x32, sha1 of the built structure) of each spec
EXPECTED = {
    "anynet": (11008, 7143424, "d93ed0fa2a04"),
    "macro": (42404, 3606016, "4fbed93b88e5"),
    "nb201": (11276, 3006464, "32fd3af1e5a0"),
    "nds-amoeba": (10748, 5566464, "37b4ccd752be"),
    "nds-darts": (6940, 4108288, "f25774fcd4b7"),
    "nds-enas": (9020, 4153344, "e8abd80be22f"),
    "nds-nasnet": (11208, 6125568, "8197b464b2fa"),
    "nds-pnas": (16360, 7362560, "c1f9497c9bf1"),
    "nds-resnet": (7312, 5767168, "cce81b13d155"),
    "nds-resnext-a": (3472, 2736128, "954b8b00d8f0"),
    "nds-resnext-b": (2192, 1966080, "5881c228b2d0"),
    "randwire-ba": (2992, 2756608, "33afc8999356"),
    "randwire-er": (2586, 2551808, "827097254331"),
    "randwire-ws": (3178, 3035136, "30778a0854f7"),
    "relational-mlp": (4016, 9216, "554d2b498fc8"),
    "relational-resnet": (5849, 6791168, "1b3c6961baf6"),
    "timm": (4922488, 44765184, "f6c45ee08c83"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stored_complexity(name):
    spec = ArchSpec(name, SPECS.get(name, {}), 7)
    net = build(spec, 3)
    c = complexity(spec, 3, 32)
    assert c["params"] == sum(p.numel() for p in net.parameters())
    got = (c["params"], c["flops"], hashlib.sha1(net.structure.encode()).hexdigest()[:12])
    assert got == EXPECTED[name]


def test_flops_of_a_conv_linear_stack_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 4, 3, stride=2, padding=1, groups=2), nn.Flatten(), nn.Linear(4 * 5 * 5, 7))
    # conv1: 2 * 3*9 * 8 * 10*10 = 43,200; conv2 (groups 2): 2 * (8/2)*9 * 4 * 5*5 = 7,200;
    # linear: 2 * 100 * 7 = 1,400 (biases, BN and ReLU are not counted)
    assert count_flops(net, (1, 3, 10, 10)) == 43_200 + 7_200 + 1_400
    assert count_params(net) == (3 * 9 * 8 + 8) + 16 + (4 * 9 * 4 + 4) + (100 * 7 + 7)


def test_macro_flops_by_hand():
    # "00000000" at 32x32: stem 2*27*32*1024; three 1x1 stride-2 convs 2*Cin*Cout*HW (32->64 at 16x16,
    # 64->128 at 8x8, 128->256 at 4x4); head 2*256*1280*16
    expect = 2 * 27 * 32 * 1024 + 2 * (32 * 64 * 256 + 64 * 128 * 64 + 128 * 256 * 16) + 2 * 256 * 1280 * 16
    assert complexity(ArchSpec("macro", {"arch": "00000000", "width": 1.0}), 3, 32)["flops"] == expect == 15_400_960
