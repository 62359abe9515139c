"""NDS cell spaces: op sets, sampling rules, genotype strings, the DARTS network."""

import numpy as np
import pytest
import torch

from unnas.errors import UserError
from unnas.generators import nds
from unnas.generators.complexity import count_params
from unnas.spec import ArchSpec, build, get_generator


def test_space_sizes_match_nds_table():
    # NDS Table 1: ops per space NASNet 13, Amoeba 8, PNAS 8, ENAS 5, DARTS 8; nodes 5, 5, 5, 5, 4
    got = {k: (len(s.ops), s.nodes, s.output) for k, s in nds.SPACES.items()}
    assert got == {"nasnet": (13, 5, "loose"), "amoeba": (8, 5, "loose"), "pnas": (8, 5, "all"),
                   "enas": (5, 5, "loose"), "darts": (8, 4, "all")}
    for s in nds.SPACES.values():
        assert len(set(s.ops)) == len(s.ops)
        for op in s.ops:
            out = nds.make_op(op, 4, 2)(torch.randn(2, 4, 7, 7))
            assert out.shape == (2, 4, 4, 4), op
            assert nds.make_op(op, 4, 1)(torch.randn(2, 4, 7, 7)).shape == (2, 4, 7, 7), op


def test_sampled_cells_follow_the_rules():
    rng = np.random.default_rng(0)
    for name, space in nds.SPACES.items():
        for _ in range(50):
            cell = nds.sample_cell(space, rng)
            assert len(cell) == 2 * space.nodes
            for e, (op, i) in enumerate(cell):
                assert op in space.ops and 0 <= i < e // 2 + 2
            if space.distinct_inputs:
                assert all(cell[2 * k][1] != cell[2 * k + 1][1] for k in range(space.nodes))


def test_sampling_is_uniform_over_ops_and_inputs():
    rng = np.random.default_rng(1)
    space = nds.SPACES["enas"]
    cells = [nds.sample_cell(space, rng) for _ in range(4000)]
    ops = np.array([[space.ops.index(op) for op, _ in c] for c in cells])
    freq = np.bincount(ops.ravel(), minlength=5) / ops.size
    assert np.abs(freq - 0.2).max() < 0.01  # 40,000 draws: sd ~0.002
    last = np.array([c[-1][1] for c in cells])  # node 4 reads one of 6 states
    assert np.abs(np.bincount(last, minlength=6) / len(last) - 1 / 6).max() < 0.03


def test_genotype_round_trip_and_named_darts():
    for name in nds.SPACES:
        normal, reduce = nds.sample_genotype(nds.SPACES[name], 11)
        text = nds.format_genotype(normal, reduce)
        assert nds.parse_genotype(text, name) == (normal, reduce)
        if name == "pnas":
            assert normal == reduce
    v2 = nds.parse_genotype("darts", "darts")
    assert v2 == nds.parse_genotype("darts_v2", "darts") != nds.parse_genotype("darts_v1", "darts")
    assert nds.format_genotype(*v2).startswith("normal:sep_conv_3x3~0,sep_conv_3x3~1,")
    net = build(ArchSpec("nds-darts", {"genotype": "darts"}), 3)
    assert net.structure == nds.format_genotype(*v2)


def test_darts_v2_at_published_size_has_the_published_parameter_count():
    # DARTS (Liu et al. 2019) CIFAR-10, V2 cell, 36 channels, 20 cells: "param size = 3.349342MB"
    # (classifier included, auxiliary head excluded)
    net = build(ArchSpec("nds-darts", {"genotype": "darts_v2", "width": 36, "depth": 20}), 3, num_classes=10)
    assert count_params(net) == 3_349_342
    assert net.num_features == 4 * 4 * 36


def test_bad_genotypes_are_user_errors():
    bad = ["normal:sep_conv_3x3~0", "normal:foo~0,a~1;reduce:x~0",
           "normal:" + ",".join(["sep_conv_3x3~0"] * 8) + ";reduce:" + ",".join(["sep_conv_3x3~5"] * 8),
           "normal:" + ",".join(["conv_1x1~0"] * 8) + ";reduce:" + ",".join(["sep_conv_3x3~0"] * 8)]
    for text in bad:
        with pytest.raises(UserError, match="genotype"):
            nds.parse_genotype(text, "darts")
    with pytest.raises(UserError, match="genotype"):
        build(ArchSpec("nds-enas", {"genotype": "darts"}), 3)  # named genotypes belong to the DARTS space


def test_loose_ends_and_dead_inputs():
    # node 0 = (s1, s1), node 1 = (node0, s1), node 2 = (s1, s1), node 3 = (node 2, node 1), node 4 = (s1, s1)
    cell = tuple((op, i) for op, i in [("sep_conv_3x3", 1), ("skip_connect", 1), ("avg_pool_3x3", 2), ("sep_conv_3x3", 1),
                                        ("max_pool_3x3", 1), ("sep_conv_5x5", 1), ("sep_conv_3x3", 4), ("skip_connect", 3),
                                        ("sep_conv_3x3", 1), ("skip_connect", 1)])
    concat, live = nds.cell_usage(cell, 5, "loose")
    assert concat == [5, 6]  # nodes 3 and 4 are read by nobody
    assert 0 not in live and 1 in live
    c = nds.NDSCell(cell, 5, "loose", 6, 6, 4, False, False)
    assert c.pre0 is None and c.multiplier == 2
    out = c(None, torch.randn(2, 6, 8, 8))
    assert out.shape == (2, 8, 8, 8)
    # DARTS: an input read only through `none` gets no preprocessing
    dcell = tuple([("none", 0), ("sep_conv_3x3", 1)] + [("skip_connect", 1), ("none", 0)] * 3)
    concat, live = nds.cell_usage(dcell, 4, "all")
    assert concat == [2, 3, 4, 5] and 0 not in live


@pytest.mark.parametrize("name", sorted(nds.SPACES))
def test_every_parameter_of_sampled_networks_learns(name):
    torch.manual_seed(0)
    for seed in range(3):
        net = build(ArchSpec(f"nds-{name}", {"width": 4, "depth": 4}, seed), 1)
        out = net.forward_features(torch.randn(4, 1, 12, 12))
        (out * torch.randn_like(out)).sum().backward()  # a plain sum would be constant after BN
        names = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().max() > 1e-6]
        assert names == [], (seed, net.structure, names)


def test_dead_cells_are_not_built():
    # every cell reads only its previous-previous cell: odd cells' outputs are never read
    cell = tuple([("sep_conv_3x3", 0), ("sep_conv_3x3", 0)] * 4)
    text = nds.format_genotype(cell, cell)
    net = build(ArchSpec("nds-darts", {"genotype": text, "width": 4, "depth": 5}), 1)
    # live: cell 4 reads output 2, which reads 0, which reads the stem; cells 1 and 3 are dead
    assert sorted(net.cells) == ["0", "2", "4"]
    net(torch.randn(2, 1, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_nds_seed_and_genotype():
    gen = get_generator("nds-amoeba")
    assert gen.uses_seed(gen.resolve({})) and not gen.uses_seed(gen.resolve({"genotype": "x"}))
    a, b = (build(ArchSpec("nds-amoeba", {}, s), 3).structure for s in (0, 1))
    assert a != b
    assert build(ArchSpec("nds-amoeba", {"genotype": a}, 9), 3).structure == a
