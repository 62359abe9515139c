"""Several seeds per architecture: per-architecture means and the seed-to-seed noise ceiling."""

from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Hashable, Iterable, NamedTuple

import numpy as np
from unnas.eval.correlation import _corrs

_NAN = float("nan")


class SeedAggregate(NamedTuple):
    """Per-architecture means over seeds (unpacks as a 4-tuple)."""

    arch_ids: list
    mean_score: np.ndarray
    mean_ref: np.ndarray
    noise_ceiling: float


def aggregate_seeds(rows: Iterable[tuple[Hashable, Hashable, Any, Any]]) -> SeedAggregate:
    """Average scores over seeds and estimate the seed-to-seed reliability.

    Parameters
    ----------
    rows
        ``(arch_id, seed, score, ref)`` tuples.  Missing values (None/NaN/inf)
        are ignored, except a score of ``-inf`` (ranked last), which makes the
        architecture's mean ``-inf``; repeated ``(arch_id, seed)`` rows are averaged.

    Returns
    -------
    SeedAggregate(arch_ids, mean_score, mean_ref, noise_ceiling)
        ``arch_ids`` in order of first appearance; ``mean_score`` and
        ``mean_ref`` are float arrays aligned with it (mean over that arch's
        finite values, NaN if none).  ``noise_ceiling`` is the mean, over all
        pairs of seeds, of the Spearman correlation between the two seeds'
        score vectors, computed on the architectures that have a finite score
        for both seeds (pairs with fewer than 3 such architectures, or a
        constant side, are skipped).  It bounds how well any reference can
        agree with a single-seed score.  NaN with fewer than 2 seeds or no
        usable pair.
    """
    arch_index: dict = {}
    seed_index: dict = {}
    cells: dict = {}  # (arch_pos, seed_pos) -> [sum, count]
    ref_sum: list[float] = []
    ref_cnt: list[int] = []
    for row in rows:
        arch, sd, sc, rf = row
        a = arch_index.setdefault(arch, len(arch_index))
        if a == len(ref_sum):
            ref_sum.append(0.0)
            ref_cnt.append(0)
        k = seed_index.setdefault(sd, len(seed_index))
        sc = _NAN if sc is None else float(sc)
        rf = _NAN if rf is None else float(rf)
        if math.isfinite(rf):
            ref_sum[a] += rf
            ref_cnt[a] += 1
        if math.isfinite(sc) or sc == -math.inf:  # -inf: ranked last, not missing
            cell = cells.setdefault((a, k), [0.0, 0])
            cell[0] += sc
            cell[1] += 1

    n_arch, n_seed = len(arch_index), len(seed_index)
    table = np.full((n_arch, n_seed), np.nan)
    for (a, k), (total, count) in cells.items():
        table[a, k] = total / count

    with np.errstate(invalid="ignore", divide="ignore"):
        counts = (~np.isnan(table)).sum(axis=1)
        mean_score = np.where(counts > 0, np.nansum(table, axis=1) / np.maximum(counts, 1), np.nan)
        mean_ref = np.array([t / c if c else _NAN for t, c in zip(ref_sum, ref_cnt)], dtype=float)

    rhos = []
    for i, j in combinations(range(n_seed), 2):
        both = np.isfinite(table[:, i]) & np.isfinite(table[:, j])
        if both.sum() < 3:
            continue
        rho = _corrs(table[both, i], table[both, j])[0]
        if not math.isnan(rho):
            rhos.append(rho)
    ceiling = float(np.mean(rhos)) if rhos else _NAN
    return SeedAggregate(list(arch_index), mean_score, mean_ref, ceiling)
