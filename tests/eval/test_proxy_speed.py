"""The faster paths of the proxies give the values of the plain ones, and the speed benchmark counts
a proxy's arithmetic as it can be counted by hand."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from unnas.eval.proxies.patterns import distinct_patterns

ROOT = Path(__file__).resolve().parents[2]


def speed_module():
    sys.path[:0] = [str(ROOT / "benchmarks")]
    try:
        return importlib.import_module("_proxy_speed")
    finally:
        del sys.path[0]


@pytest.mark.parametrize("samples", [1, 3, 16, 20, 21, 40, 63, 64, 70])
def test_distinct_patterns_equals_a_set_of_tuples(samples):
    g = torch.Generator().manual_seed(samples)
    # few distinct columns, repeated, so that equal patterns across codes and within one are common
    base = torch.rand(samples, 7, generator=g) > 0.5
    codes = [base[:, torch.randint(0, 7, (n,), generator=g)] for n in (50, 1, 33)]
    codes.append(torch.rand(samples, 40, generator=g) > 0.5)
    expected = len({tuple(col.tolist()) for c in codes for col in c.T})
    assert distinct_patterns(codes) == expected


def test_flops_are_counted_per_dtype_as_by_hand():
    mod = speed_module()
    conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
    x = torch.randn(2, 3, 5, 5)
    # forward: 2 x (B*Co*H*W) outputs x (Ci*k*k) = 2 * 200 * 27; backward: the weight's gradient
    # only (the input needs none), the same again
    assert mod.arithmetic(lambda: conv(x).sum().backward()) == {"float32": 2 * 2 * 200 * 27}
    xg = x.clone().requires_grad_(True)  # the input's gradient too: three times the forward
    assert mod.arithmetic(lambda: conv(xg).sum().backward()) == {"float32": 3 * 2 * 200 * 27}
    # a depthwise convolution: one input channel per output, 9 products each (torch's own backward
    # formula would count the weight gradient 4x too high)
    dw = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
    assert mod.arithmetic(lambda: dw(torch.randn(1, 4, 5, 5)).sum().backward()) == {"float32": 2 * 2 * 100 * 9}
    lin = nn.Linear(4, 3, bias=False).double()
    assert mod.arithmetic(lambda: lin(torch.ones(5, 4, dtype=torch.float64))) == {"float64": 2 * 5 * 4 * 3}
    # LAPACK's leading terms: eigenvalues 4/3 n^3, singular values 2 m n^2 - 2/3 n^3, a determinant 2/3 n^3
    sym = torch.eye(6) * 2
    assert mod.arithmetic(lambda: torch.linalg.eigvalsh(sym)) == {"float32": 4 * 6 ** 3 // 3}
    assert mod.arithmetic(lambda: torch.linalg.svdvals(torch.randn(8, 3))) == {"float32": 2 * 8 * 9 - 2 * 27 // 3}
    assert mod.arithmetic(lambda: torch.linalg.slogdet(sym.double())) == {"float64": 2 * 6 ** 3 // 3}
    assert mod.bound_seconds({"float32": 100, "float64": 100}, {"float32": 100.0, "float64": 50.0}) == 3.0


def test_the_benchmark_counts_a_proxys_arithmetic_by_hand(flat, make_linear, make_input):
    mod = speed_module()
    from unnas.eval.proxies import compute_proxy

    # synflow on one linear layer (3 -> 2, float64): the forward of one all-ones input, 2 * 3 * 2,
    # and the weight's gradient, the same again
    x = make_input(flat(make_linear([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), num_features=2), [[1, 2, 3]])
    assert mod.arithmetic(lambda: compute_proxy("synflow", x)) == {"float64": 2 * 2 * 3 * 2}


TINY = ("nb201", {"arch": "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|",
                  "width": 0.25, "cells": 1})
FAMILIES = {"swap": {"swap": {"batch_size": 8, "repeats": 3},
                     "swap_reg": {"batch_size": 8, "repeats": 3, "mu": 5.0, "sigma": 100.0}},
            "az": {f"az_{p}": {"batch_size": 8} for p in ("expressivity", "progressivity", "trainability")},
            "saliencies": {n: {"batch_size": 8} for n in ("grad_norm", "snip", "fisher")}}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_proxies_sharing_one_computation_give_the_values_computed_alone(family):
    from unnas.eval.proxies import ProxyInput, compute_proxy

    from unnas.objectives import DataInfo, build_objective
    from unnas.spec import ArchSpec, build

    info = DataInfo(3, 10, (32, 32), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    torch.manual_seed(0)
    obj = build_objective("rotation", build(ArchSpec(*TINY), 3), info)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    runs = FAMILIES[family]
    alone = {n: compute_proxy(n, ProxyInput(obj, images, torch.Generator().manual_seed(2)), o) for n, o in runs.items()}
    for order in (list(runs), list(runs)[::-1]):
        memo: dict = {}
        x = ProxyInput(obj, images, torch.Generator().manual_seed(2), memo)
        assert {n: compute_proxy(n, x, runs[n]) for n in order} == alone
        assert len(memo) == 1  # one computation served them all
    # another batch or another generator state is another entry, never a stale value
    memo = {}
    compute_proxy(order[0], ProxyInput(obj, images, torch.Generator().manual_seed(2), memo), runs[order[0]])
    compute_proxy(order[0], ProxyInput(obj, images.flip(0), torch.Generator().manual_seed(2), memo), runs[order[0]])
    compute_proxy(order[0], ProxyInput(obj, images, torch.Generator().manual_seed(3), memo), runs[order[0]])
    assert len(memo) == 3


def test_proxy_jobs_of_one_candidate_share_a_memo_and_keep_their_values(monkeypatch):
    import unnas.jobs as jobs
    from unnas import config
    from unnas.data import load_dataset
    from unnas.population import sample_population

    monkeypatch.setattr(jobs, "_MEMOS", jobs.collections.OrderedDict())
    monkeypatch.setattr(jobs, "MEMO_NETWORKS", 2)
    cfg = config.load(None, ["swap.batch_size=8", "swap.repeats=2", "swap_reg.batch_size=8", "swap_reg.repeats=2",
                             "swap_reg.mu=5.0", "swap_reg.sigma=100.0"])
    data = load_dataset(cfg.data)
    specs = sample_population("nb201", 3, 0)
    cpu = torch.device("cpu")
    shared = [jobs.proxy_metrics(n, s, data, cfg, 0, cpu)["score"] for s in specs for n in ("swap", "swap_reg")]
    assert len(jobs._MEMOS) == 2  # the least recently used candidate was dropped
    assert all(len(m) == 1 for m in jobs._MEMOS.values())  # swap_reg reused swap's count
    jobs._MEMOS.clear()
    jobs.MEMO_NETWORKS = 0  # nothing kept: every job computes alone
    alone = [jobs.proxy_metrics(n, s, data, cfg, 0, cpu)["score"] for s in specs for n in ("swap", "swap_reg")]
    assert shared == alone


def test_the_summary_gives_the_fraction_of_the_bound_and_null_ratios_without_the_authors_code():
    mod = speed_module()
    sys.path[:0] = [str(ROOT / "benchmarks")]
    try:
        authors = importlib.import_module("_authors")
    finally:
        del sys.path[0]
    found, reasons = authors.load_authors("", {})
    assert found == {} and "no --authors-dir" in reasons["swap"] and "score_networks.py" in reasons["naswot"]
    peaks = {"float32": 100e9, "float64": 50e9}

    def net(seconds, theirs=None):
        row = {"value": 1.0, "seconds": seconds, "flops": {"float32": 100e9, "float64": 25e9}}
        if theirs is not None:
            row.update(authors_seconds=theirs, authors_value=1.0)
        return {mod.NETWORK_FORWARD: {"seconds": 1.0, "flops": {"float32": 50e9}}, "swap": row,
                mod.SHARED: {"seconds": seconds / 2, "alone_seconds": seconds}}

    # bound: 100 GFLOP at 100 GFLOP/s + 25 GFLOP at 50 GFLOP/s = 1.5 s
    out = mod.summarize([net(3.0), net(6.0)], ["swap"], peaks, reasons)
    assert out["swap"]["bound_s_median"] == 1.5
    assert out["swap"]["fraction_of_bound_median"] == 0.375  # median of 0.5 and 0.25
    assert out["swap"]["fraction_of_bound_total"] == round(3.0 / 9.0, 3)
    assert out["swap"]["ratio_vs_authors_median"] is None and "no --authors-dir" in out["swap"]["ratio_reason"]
    assert out[mod.NETWORK_FORWARD]["fraction_of_bound_median"] == 0.5
    assert out[mod.SHARED]["saved_fraction_total"] == 0.5
    with_theirs = mod.summarize([net(3.0, theirs=6.0), net(6.0, theirs=6.0)], ["swap"], peaks, reasons)
    assert with_theirs["swap"]["ratio_vs_authors_median"] == 0.75 and with_theirs["swap"]["authors_rel_diff_max"] == 0.0
