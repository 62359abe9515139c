"""The UnNAS "random experiment": sample m candidates uniformly, keep the one a score ranks
best, and look at its reference accuracy; exact expectations over all m-subsets (no Monte Carlo
for the mean), a Monte Carlo spread for the band. Pure functions, higher is better on both sides.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
from scipy.special import gammaln
from unnas.eval.correlation import _CHUNK, _NAN, _paired


# --------------------------------------------------------------------------- #
# random experiment
# --------------------------------------------------------------------------- #
def _default_ms(n: int) -> list[int]:
    ms = []
    m = 1
    while m < n:
        ms.append(m)
        m *= 2
    if n >= 1:
        ms.append(n)
    return ms


def _best_of_m_weights(order_values: np.ndarray, m: int) -> np.ndarray:
    """P(candidate i has the largest ``order_values`` in a uniform m-subset).

    The candidate of ascending rank ``t`` (1-based) wins with probability
    ``C(t-1, m-1) / C(n, m)``; tied candidates share their group's mass.
    """
    n = order_values.size
    order = np.argsort(order_values, kind="stable")
    t = np.arange(1, n + 1, dtype=float)
    w_sorted = np.zeros(n)
    ok = t >= m
    tt = t[ok]
    log_c_nm = gammaln(n + 1) - gammaln(m + 1) - gammaln(n - m + 1)
    w_sorted[ok] = np.exp(gammaln(tt) - gammaln(tt - m + 1) - gammaln(m) - log_c_nm)
    # spread mass evenly inside tie groups of the sorted values
    sv = order_values[order]
    _, start, counts = np.unique(sv, return_index=True, return_counts=True)
    group_mass = np.add.reduceat(w_sorted, start)
    w_sorted = np.repeat(group_mass / counts, counts)
    w = np.empty(n)
    w[order] = w_sorted
    return w / w.sum()


def _moments(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    mean = float(np.dot(weights, values))
    var = float(np.dot(weights, (values - mean) ** 2))
    return mean, math.sqrt(max(var, 0.0))


def random_experiment(
    score: Any,
    reference: Any,
    *,
    ms: Iterable[int] | None = None,
    n_draws: int = 1000,
    seed: int = 0,
) -> dict:
    """The "random experiment": pick the best of m random candidates.

    For every subset size ``m`` (default 1, 2, 4, ... below ``n``, then ``n``)
    ``n_draws`` subsets of ``m`` distinct candidates are drawn.  In each subset
    three candidates are chosen and their *reference* values recorded:

    - ``proxy``: the one with the highest score (score ties: the first in the
      random subset order, i.e. uniformly at random);
    - ``oracle``: the one with the highest reference;
    - ``random``: a uniformly random member.

    Subsets for different ``m`` are nested prefixes of the same random
    permutations (each is still a uniform m-subset), which keeps the curves
    smooth in ``m``.  Missing pairs are dropped first.

    Returns
    -------
    dict with ``m`` (list of ints), ``n``, ``n_dropped``, ``n_draws``,
    ``population_mean`` and ``population_std`` of the reference, and for each
    of ``"proxy"``, ``"oracle"``, ``"random"`` a dict of lists aligned with
    ``m``: ``mean`` and ``std`` over the draws (Monte Carlo), and
    ``expected`` and ``expected_std``, the exact mean and standard deviation
    of the same quantity over all m-subsets (computed from order statistics).
    """
    s, r, n_dropped, _ = _paired(score, reference)  # -inf scores rank last
    n = int(s.size)
    if n_draws < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    if ms is None:
        m_list = _default_ms(n)
    else:
        m_list = sorted({int(m) for m in ms})
        bad = [m for m in m_list if not 1 <= m <= n]
        if bad:
            raise ValueError(f"ms: every m must be in [1, {n}], got {bad}")

    names = ("proxy", "oracle", "random")
    out: dict = {
        "m": m_list,
        "n": n,
        "n_dropped": n_dropped,
        "n_draws": int(n_draws),
        "population_mean": float(r.mean()) if n else _NAN,
        "population_std": float(r.std()) if n else _NAN,
    }
    curves = {k: {"mean": [], "std": [], "expected": [], "expected_std": []} for k in names}
    if not m_list:
        out.update(curves)
        return out

    rng = np.random.default_rng(seed)
    m_max = m_list[-1]
    picked = {k: np.empty((len(m_list), n_draws)) for k in names}
    rows = max(1, _CHUNK // n)
    for a in range(0, n_draws, rows):
        b = min(n_draws, a + rows)
        subset = rng.permuted(np.broadcast_to(np.arange(n), (b - a, n)), axis=1)[:, :m_max]
        ss, rr = s[subset], r[subset]
        for i, m in enumerate(m_list):
            best = np.argmax(ss[:, :m], axis=1)
            picked["proxy"][i, a:b] = rr[np.arange(b - a), best]
            picked["oracle"][i, a:b] = rr[:, :m].max(axis=1)
            pos = rng.integers(0, m, size=b - a)
            picked["random"][i, a:b] = rr[np.arange(b - a), pos]

    uniform = np.full(n, 1.0 / n)
    for i, m in enumerate(m_list):
        exact = {
            "proxy": _moments(r, _best_of_m_weights(s, m)),
            "oracle": _moments(r, _best_of_m_weights(r, m)),
            "random": _moments(r, uniform),
        }
        for k in names:
            curves[k]["mean"].append(float(picked[k][i].mean()))
            curves[k]["std"].append(float(picked[k][i].std()))
            curves[k]["expected"].append(exact[k][0])
            curves[k]["expected_std"].append(exact[k][1])
    out.update(curves)
    return out
