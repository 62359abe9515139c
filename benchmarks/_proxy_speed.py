"""The speed half of ``benchmarks/proxies.py --speed``: every proxy's seconds per network against the
arithmetic it does, and against the authors' code on the same networks.

* **Arithmetic**: the proxy runs once under :class:`FlopsByDtype` (``torch.utils.flop_counter``
  with ``_step``'s grouped-convolution-correct backward), which counts the convolutions and matrix
  products it executes, forward and backward, per dtype (synflow runs in float64).
* **Peak**: the best FLOP/s of matrix products (``_step.matmul_peak``) per dtype with the same
  threads and clock, measured before and after the proxies (the better of the two).
* **Bound** = FLOPs / peak, summed over dtypes: what the proxy would take if every product ran at
  the peak and nothing else cost anything. **Fraction** = bound / seconds (1 is the roof).
* Seconds are CPU seconds of one thread by default (``--threads 1``: other work on the machine
  barely moves them), the best of ``--repeats`` runs.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import math
import statistics
import time
from typing import Callable

import numpy as np
import torch
from _step import PEAK_SHAPES, _conv_backward_flops, matmul_peak
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from unnas.eval.proxies import ProxyInput, compute_proxy

from unnas.generators import macro, nb201
from unnas.objectives import DataInfo, build_objective
from unnas.spec import ArchSpec, build

# float64 products reach their best on smaller squares; the float32 ones on _step's shapes
PEAKS = {"float32": PEAK_SHAPES[:1] + PEAK_SHAPES[2:], "float64": ((1024, 1024, 1024), (2048, 2048, 2048))}


def _batch(shape) -> int:
    return math.prod(shape[:-2])


def _eigh_flops(a_shape, *args, out_val=None, **kwargs) -> int:
    """Eigenvalues of symmetric ``n x n`` matrices: ``4/3 n^3`` each (the tridiagonal reduction)."""
    n = a_shape[-1]
    return int(_batch(a_shape) * 4 * n ** 3 / 3)


def _svd_flops(a_shape, *args, out_val=None, **kwargs) -> int:
    """Singular values of ``m x n`` matrices (``m >= n``): ``2 m n^2 - 2/3 n^3`` each (bidiagonalization)."""
    m, n = max(a_shape[-2:]), min(a_shape[-2:])
    return int(_batch(a_shape) * (2 * m * n ** 2 - 2 * n ** 3 / 3))


def _lu_flops(a_shape, *args, out_val=None, **kwargs) -> int:
    """A determinant of ``n x n`` matrices: one LU factorization, ``2/3 n^3`` each."""
    n = a_shape[-1]
    return int(_batch(a_shape) * 2 * n ** 3 / 3)


# the leading terms of LAPACK's counts (values only), beside torch's products and convolutions
LINALG = {torch.ops.aten._linalg_eigh: flop_counter.shape_wrapper(_eigh_flops),
          torch.ops.aten._linalg_svd: flop_counter.shape_wrapper(_svd_flops),
          torch.ops.aten._linalg_slogdet: flop_counter.shape_wrapper(_lu_flops)}


class FlopsByDtype(TorchDispatchMode):
    """Counts the FLOPs of the convolutions, matrix products and :data:`LINALG` decompositions run while active, per dtype of each
    op's first tensor argument (``by_dtype``): ``torch.utils.flop_counter``'s formulas, with
    ``_step``'s grouped-convolution-correct backward. Unlike ``FlopCounterMode`` it tracks no
    modules, so it does not hook the autograd graph (``autograd.grad`` on an input works under it)."""

    def __init__(self):
        super().__init__()
        self.formulas = {**flop_counter.flop_registry, **LINALG,
                         torch.ops.aten.convolution_backward: flop_counter.shape_wrapper(_conv_backward_flops)}
        self.by_dtype: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            dtype = str(first.dtype).removeprefix("torch.") if first is not None else "float32"
            self.by_dtype[dtype] += formula(*args, **kwargs, out_val=out)
        return out


def arithmetic(fn: Callable[[], object]) -> dict[str, int]:
    """FLOPs per dtype of the products ``fn()`` runs (forward and backward)."""
    with FlopsByDtype() as counter:
        fn()
    return dict(counter.by_dtype)


def bound_seconds(flops: dict[str, int], peaks: dict[str, float]) -> float:
    """Seconds at the peak of each dtype (a dtype without a measured peak counts at float32's)."""
    return sum(n / peaks.get(dtype, peaks["float32"]) for dtype, n in flops.items())


def measure_peaks(clock: Callable[[], float]) -> dict[str, float]:
    return {name: matmul_peak(getattr(torch, name), shapes, clock=clock) for name, shapes in PEAKS.items()}


def networks(seed: int, nb201_count: int, macro_count: int) -> list[ArchSpec]:
    """NAS-Bench-201 cells at the published size (C=16, N=5) and NAS-Bench-Macro networks at width 1,
    drawn uniformly with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    cells = [nb201.from_index(int(i)) for i in rng.choice(nb201.N_ARCHS, nb201_count, replace=False)]
    nets = [macro.from_index(int(i)) for i in rng.choice(macro.N_ARCHS, macro_count, replace=False)]
    return ([ArchSpec("nb201", {"arch": a, "width": 1.0, "cells": 5}) for a in cells]
            + [ArchSpec("macro", {"arch": a, "width": 1.0}) for a in nets])


def proxy_input(spec: ArchSpec, info: DataInfo, images: torch.Tensor, seed: int) -> ProxyInput:
    torch.manual_seed(seed)
    obj = build_objective("rotation", build(spec, 3), info)
    return ProxyInput(obj, images, torch.Generator().manual_seed(seed))


def timed(fn: Callable[[], object], repeats: int, clock: Callable[[], float]) -> tuple[object, float]:
    """The value of ``fn()`` and its best time over ``repeats`` calls."""
    best, value = float("inf"), None
    for _ in range(repeats):
        t = clock()
        value = fn()
        best = min(best, clock() - t)
    return value, best


SHARED = "all_proxies_shared"  # every proxy of a network in turn with one memo, as jobs in one process
NETWORK_FORWARD = "network_forward"  # not a proxy: the network's own forward pass, what it can reach
FORWARD_BATCH = 64


def forward_row(x: ProxyInput, repeats: int, clock: Callable[[], float]) -> dict:
    """A bare forward pass of the backbone on ``FORWARD_BATCH`` images (training-mode BatchNorm, no
    gradient), as the proxies run it: the fraction of the bound the network itself reaches,
    whatever a proxy does around it (its BatchNorms, poolings and additions are not products)."""
    net = copy.deepcopy(x.backbone).train()  # the proxies see the network's own BatchNorm statistics
    inputs = x.inputs(FORWARD_BATCH)

    def run():
        with torch.no_grad():
            return net(inputs)

    flops = arithmetic(run)
    _, seconds = timed(run, repeats, clock)
    return {"seconds": seconds, "flops": flops}


def kind(op: str) -> str:
    """``_step.kind_of``, with the eigen-, singular-value and determinant routines as ``linalg``."""
    from _step import kind_of

    name = op.removeprefix("aten::")
    return "linalg" if name.startswith(("_linalg", "linalg")) else kind_of(op)


def time_shares(fn: Callable[[], object]) -> dict[str, float]:
    """Seconds of ``fn()`` under ``torch.profiler`` per kind of aten op (:func:`kind`: matmul =
    convolutions and products, linalg, batch_norm, copies and layout, other elementwise ops), and
    ``outside_aten``: the rest of the call (Python, module calls and hooks, the profiler's own
    per-op cost)."""
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with record_function("whole_proxy"):
            fn()
    out: dict[str, float] = collections.Counter()
    total = 0.0
    for ev in prof.key_averages():
        if ev.key.startswith("aten::"):
            out[kind(ev.key)] += ev.self_cpu_time_total / 1e6
        elif ev.key == "whole_proxy":
            total = ev.cpu_time_total / 1e6
    out["outside_aten"] = max(total - sum(out.values()), 0.0)
    return dict(out)


def measure_network(x: ProxyInput, names: list[str], options: dict, authors: dict, repeats: int,
                    clock: Callable[[], float], profile: bool = False) -> dict:
    """One network: per proxy its FLOPs by dtype, its seconds (``profile``: and where they go) and,
    where the authors' code is loaded (``authors``: name -> callable of ``x``), theirs and their
    value; then every proxy again in turn with one memo, as a job process runs a candidate's
    proxy jobs (``SHARED``: their total seconds)."""
    out = {NETWORK_FORWARD: forward_row(x, repeats, clock)}
    for name in names:
        run = (lambda n=name: compute_proxy(n, x, options.get(n)))
        flops = arithmetic(run)
        value, seconds = timed(run, repeats, clock)
        row = {"value": value, "seconds": seconds, "flops": flops}
        if profile:
            row["shares"] = time_shares(run)
        if name in authors:
            theirs, their_s = timed(lambda n=name: authors[n](x), repeats, clock)
            row.update(authors_value=theirs, authors_seconds=their_s)
        out[name] = row
    memo: dict = {}
    together = dataclasses.replace(x, memo=memo)
    t = clock()
    for name in names:
        assert compute_proxy(name, together, options.get(name)) == out[name]["value"], name
    out[SHARED] = {"seconds": clock() - t, "alone_seconds": sum(out[n]["seconds"] for n in names)}
    return out


def summarize(per_net: list[dict], names: list[str], peaks: dict[str, float], reasons: dict[str, str]) -> dict:
    """Per proxy over the networks: median seconds, median bound, the fraction of the bound (median
    over networks, and total bound / total seconds) and the median ratio ours / authors'."""
    out = {}
    for name in [NETWORK_FORWARD, *names]:
        rows = [r[name] for r in per_net]
        bounds = [bound_seconds(r["flops"], peaks) for r in rows]
        secs = [r["seconds"] for r in rows]
        gflop = [sum(r["flops"].values()) / 1e9 for r in rows]
        entry = {"s_per_network_median": round(statistics.median(secs), 4),
                 "gflop_median": round(statistics.median(gflop), 3),
                 "bound_s_median": round(statistics.median(bounds), 4),
                 "fraction_of_bound_median": (round(statistics.median(b / s for b, s in zip(bounds, secs)), 3)
                                              if any(bounds) else None),
                 "fraction_of_bound_total": round(sum(bounds) / sum(secs), 3) if any(bounds) else None}
        if all("shares" in r for r in rows):
            spent = collections.Counter()
            for r in rows:
                spent.update(r["shares"])
            entry["time_share"] = {k: round(v / sum(spent.values()), 3) for k, v in spent.most_common()}
        theirs = [r for r in rows if "authors_seconds" in r]
        if name == NETWORK_FORWARD:
            pass
        elif theirs:
            entry["authors_s_median"] = round(statistics.median(r["authors_seconds"] for r in theirs), 4)
            entry["ratio_vs_authors_median"] = round(statistics.median(
                r["seconds"] / r["authors_seconds"] for r in theirs), 3)
            diffs = [rel_diff(r["value"], r["authors_value"]) for r in theirs]
            entry["authors_rel_diff_max"] = max((d for d in diffs if d is not None), default=None)
            entry["authors_not_finite"] = sum(d is None for d in diffs)
        else:
            entry["ratio_vs_authors_median"] = None
            entry["ratio_reason"] = reasons.get(name, "no authors' code")
        out[name] = entry
    shared = [r[SHARED] for r in per_net]
    out[SHARED] = {"s_per_network_median": round(statistics.median(r["seconds"] for r in shared), 3),
                   "alone_s_per_network_median": round(statistics.median(r["alone_seconds"] for r in shared), 3),
                   "saved_fraction_total": round(1 - sum(r["seconds"] for r in shared)
                                                 / sum(r["alone_seconds"] for r in shared), 3)}
    return out


def rel_diff(ours: float, theirs: float) -> float | None:
    """``|ours - theirs| / max(|ours|, |theirs|)``; None when theirs is not finite (AZ-NAS's code
    returns NaN where rounding makes an eigenvalue negative, see :mod:`unnas.eval.proxies.aznas`)."""
    if ours == theirs:
        return 0.0
    if not math.isfinite(theirs):
        return None
    return float(abs(ours - theirs) / max(abs(ours), abs(theirs)))


def clock_of(threads: int) -> Callable[[], float]:
    """CPU seconds with one thread (robust to other work on the machine), wall seconds otherwise."""
    return time.process_time if threads == 1 else time.perf_counter


def main(a, names: list[str]) -> int:
    """``proxies.py --speed``: one JSON line on stdout, progress on stderr."""
    import json
    import os
    import platform
    import sys

    from _authors import load_authors
    from _step import images_and_info
    from unnas.eval.proxies import images_needed
    from unnas.eval.proxies.patterns import population_prior

    from unnas.generators.complexity import complexity

    torch.set_num_threads(a.threads)
    clock = clock_of(a.threads)
    specs = networks(a.seed, a.nb201, a.macro)
    sizes = [complexity(s)["params"] for s in specs]
    options = {"swap_reg": population_prior(sizes * 2 if len(sizes) == 1 else sizes)}
    need = max(FORWARD_BATCH, *(images_needed(n, options.get(n)) for n in names))
    images, _, info, source = images_and_info(max(need, 256), seed=a.seed)  # labels are not used
    images = images[:need]
    authors, reasons = load_authors(a.authors_dir, options)
    peaks = measure_peaks(clock)
    per_net = []
    for k, spec in enumerate(specs):
        x = proxy_input(spec, info, images, a.seed * 100_000 + k)
        per_net.append(measure_network(x, names, options, authors, a.repeats, clock, a.profile))
        if a.out:  # each network's raw measurements as it finishes (JSON lines)
            with open(a.out, "a") as f:
                f.write(json.dumps({"network": f"{spec.generator}:{spec.params['arch']}", **per_net[-1]}) + "\n")
        took = sum(r["seconds"] + r.get("authors_seconds", 0) for r in per_net[-1].values())
        print(f"[{k + 1}/{len(specs)}] {spec.generator} {spec.params['arch']}: {took:.1f} s", file=sys.stderr, flush=True)
    after = measure_peaks(clock)
    peaks = {d: max(peaks[d], after[d]) for d in peaks}
    print(json.dumps({
        "benchmark": "proxies-speed", "seed": a.seed, "images": source, "threads": a.threads,
        "clock": "cpu" if clock is time.process_time else "wall", "repeats": a.repeats,
        "networks": [f"{s.generator}:{s.params['arch']}" for s in specs],
        "peak_gflop_s": {d: round(v / 1e9, 1) for d, v in peaks.items()},
        "proxies": summarize(per_net, names, peaks, reasons),
        "authors_dir": a.authors_dir or None, "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu": platform.processor() or platform.machine(),
        "loadavg_1m": round(os.getloadavg()[0], 2)}))
    return 0
