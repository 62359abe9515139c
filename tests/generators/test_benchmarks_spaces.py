"""NAS-Bench-201 and NAS-Bench-Macro: enumeration, strings, published networks."""

import itertools

import numpy as np
import pytest
import torch

from unnas.errors import UserError
from unnas.generators import macro, nb201
from unnas.generators.complexity import count_params
from unnas.spec import ArchSpec, build, get_generator

ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


# ------------------------------------------------------------------------------ NAS-Bench-201
def test_nb201_all_cells_enumerate_parse_and_round_trip():
    archs = list(nb201.all_archs())
    assert len(archs) == len(set(archs)) == 5 ** 6 == nb201.N_ARCHS
    for i, a in enumerate(archs):
        ops = nb201.parse(a)
        assert nb201.to_str(ops) == a
        assert nb201.arch_index(a) == i and nb201.from_index(i) == a
    assert archs[0] == ALL_NONE
    assert archs[nb201.arch_index(ALL_CONV3)] == ALL_CONV3


def test_nb201_string_format_is_the_published_one():
    ops = ("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "none", "nor_conv_3x3")
    assert nb201.to_str(ops) == ("|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+"
                                 "|skip_connect~0|none~1|nor_conv_3x3~2|")


@pytest.mark.parametrize("bad", ["", "|nor_conv_3x3~0|", "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                 "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
                                 "|none~0|+|none~0|+|none~0|none~1|none~2|", 5])
def test_nb201_bad_strings_are_user_errors(bad):
    with pytest.raises(UserError, match="arch"):
        nb201.parse(bad)


def test_nb201_published_parameter_counts():
    # NAS-Bench-201 CIFAR-10 networks span 0.073 MB (no conv) to 1.531 MB (all nor_conv_3x3); by hand:
    # stem 432 + BN 32; reductions 16->32: 4608+64 + 9216+64 + 512; 32->64: 18432+128 + 36864+128 + 2048;
    # last BN 128; classifier 650 -> 73,306. Each 3x3 edge adds 9C^2 + 2C: 6 * 5 * (2336 + 9280 + 36992).
    small = build(ArchSpec("nb201", {"arch": ALL_NONE, "width": 1.0, "cells": 5}), 3, num_classes=10)
    big = build(ArchSpec("nb201", {"arch": ALL_CONV3, "width": 1.0, "cells": 5}), 3, num_classes=10)
    assert count_params(small) == 73_306
    assert count_params(big) == 73_306 + 30 * (2336 + 9280 + 36992) == 1_531_546


def test_nb201_live_edges_get_gradients_and_dead_edges_zero():
    arch = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|nor_conv_3x3~0|none~1|none~2|"
    # edge 2 (1 -> 2) reaches node 2, but node 2 only feeds node 3 through `none`: dead;
    # edge 0 (0 -> 1) likewise only reaches node 3 through none edges
    assert nb201.live_edges(arch) == {3}
    torch.manual_seed(0)
    net = build(ArchSpec("nb201", {"arch": arch, "width": 0.5, "cells": 1}), 3)
    out = net.forward_features(torch.randn(4, 3, 16, 16))
    (out * torch.randn_like(out)).sum().backward()
    for cell in (m for m in net.modules() if isinstance(m, nb201.Cell)):
        for e, op in enumerate(cell.edges):
            for name, p in op.named_parameters():
                g = p.grad.abs().max().item()
                if e not in nb201.live_edges(arch):
                    assert g == 0.0, (e, name, g)
                elif p.dim() == 4:  # the conv of a live edge learns (a BN bias right before the
                    assert g > 1e-6, (e, name, g)  # last train-mode BN is cancelled by it)


def test_nb201_cut_cells_still_give_valid_networks():
    cut = [a for a in nb201.all_archs() if nb201.is_cut(a)]
    assert nb201.is_cut(ALL_NONE) and not nb201.is_cut(ALL_CONV3)
    # cut iff e3 = none and both 0->1->... and 0->2->3 paths are blocked; count by inclusion:
    # 5 ops, 4 real; paths (e0,e4), (e1,e5), (e0,e2,e5) must each contain a none edge
    blocked = sum(1 for o in itertools.product(range(5), repeat=5)  # e0 e1 e2 e4 e5
                  if 0 in (o[0], o[3]) and 0 in (o[1], o[4]) and 0 in (o[0], o[2], o[4]))
    assert len(cut) == blocked
    for arch in cut[::len(cut) // 5][:5] + [ALL_NONE]:
        net = build(ArchSpec("nb201", {"arch": arch, "width": 0.25}), 1, num_classes=10)
        out = net(torch.randn(2, 1, 16, 16))
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        out.sum().backward()
        assert all(p.grad is not None for p in net.parameters())
        assert net.has_zero_ops


def test_nb201_cut_agrees_with_brute_force_reachability():
    # a cell is cut iff node 3 is not reachable from node 0 along non-none edges
    for a in itertools.islice(nb201.all_archs(), 0, None, 11):
        ops = nb201.parse(a)
        reach = {0}
        for e, (i, j) in enumerate(nb201.EDGES):
            if ops[e] != "none" and i in reach:
                reach.add(j)
        assert nb201.is_cut(a) == (3 not in reach)


def test_nb201_seed_draws_uniform_cells():
    gen = get_generator("nb201")
    p = gen.resolve({})
    idx = np.array([nb201.arch_index(gen.arch(p, s)) for s in range(3000)])
    first_op = idx // 5 ** 5
    assert np.abs(np.bincount(first_op, minlength=5) / 3000 - 0.2).max() < 0.04
    assert gen.uses_seed(p) and not gen.uses_seed(gen.resolve({"arch": ALL_CONV3}))
    sampled = gen.sample_params(np.random.default_rng(0), {})
    nb201.parse(sampled["arch"])


# -------------------------------------------------------------------------- NAS-Bench-Macro
def _mb_params(cin: int, cout: int, t: int, k: int) -> int:
    h = cin * t
    return cin * h + 2 * h + h * k * k + 2 * h + h * cout + 2 * cout  # convs + BN weight/bias


def _hand_params(arch: str) -> int:
    total = 3 * 32 * 9 + 2 * 32  # stem conv + BN
    c, pos = 32, 0
    for n in macro.STAGES:
        for i in range(n):
            cout = 2 * c if i == 0 else c
            ch = arch[pos]
            if ch == "1":
                total += _mb_params(c, cout, 3, 3)
            elif ch == "2":
                total += _mb_params(c, cout, 6, 5)
            elif i == 0:
                total += c * cout + 2 * cout  # identity at a stride-2 layer: 1x1 conv + BN
            c, pos = cout, pos + 1
    return total + c * 1280 + 2 * 1280  # head conv + BN


def test_macro_all_strings_round_trip():
    archs = list(macro.all_archs())
    assert len(archs) == len(set(archs)) == 3 ** 8 == 6561
    for i, a in enumerate(archs):
        assert macro.check_arch(a) == a and macro.arch_index(a) == i and macro.from_index(i) == a


@pytest.mark.parametrize("arch,expected", [("00000000", 375_072), ("11111111", 1_576_064), ("22222222", 2_919_776)])
def test_macro_published_parameter_counts(arch, expected):
    # by hand (see _hand_params); e.g. "00000000": 864 + 64 + (2048 + 128) + (8192 + 256) + (32768 + 512)
    # + 327680 + 2560 = 375,072
    assert _hand_params(arch) == expected
    net = build(ArchSpec("macro", {"arch": arch, "width": 1.0}), 3)
    assert count_params(net) == expected
    assert count_params(build(ArchSpec("macro", {"arch": arch, "width": 1.0}), 3, num_classes=10)) == expected + 12_810


def test_macro_mixed_arch_and_shapes():
    for arch in ("01201201", "20000002", "12121212"):
        net = build(ArchSpec("macro", {"arch": arch, "width": 1.0}), 3)
        assert count_params(net) == _hand_params(arch)
    net = build(ArchSpec("macro", {"arch": "12121212"}), 3)
    assert net.forward_features(torch.randn(2, 3, 32, 32)).shape == (2, 320, 4, 4)


@pytest.mark.parametrize("bad", ["0120", "01201203", 12345678, "abcdefgh"])
def test_macro_bad_strings(bad):
    with pytest.raises(UserError, match="arch"):
        build(ArchSpec("macro", {"arch": bad}), 3)
