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
    assert mod.bound_seconds({"float32": 100, "float64": 100}, {"float32": 100.0, "float64": 50.0}) == 3.0


def test_the_benchmark_counts_a_proxys_arithmetic_by_hand(flat, make_linear, make_input):
    mod = speed_module()
    from unnas.eval.proxies import compute_proxy

    # synflow on one linear layer (3 -> 2, float64): the forward of one all-ones input, 2 * 3 * 2,
    # and the weight's gradient, the same again
    x = make_input(flat(make_linear([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), num_features=2), [[1, 2, 3]])
    assert mod.arithmetic(lambda: compute_proxy("synflow", x)) == {"float64": 2 * 2 * 3 * 2}
