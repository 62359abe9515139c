"""Agreement between a label-free score and a supervised reference.

All functions are pure: array-likes in, plain ``dict`` / ``float`` / ``list``
values out (no NumPy scalars in the returned dictionaries), so results can be
passed to :func:`json.dumps` directly.  For both vectors *higher is better*;
negate an error before passing it.

Candidates whose score or reference is missing (``None``, NaN or +-inf, e.g.
a failed training run) are dropped pairwise and counted in ``n_dropped``,
except a score of ``-inf`` (a value that could not be computed), which ranks
last and is counted in ``n_nonfinite``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

__all__ = [
    "agreement",
    "resolve_k",
    "top_k_indices",
    "pairwise_accuracy",
]

_NAN = float("nan")
# Fewer candidates than this and the agreement statistics mean nothing: with n candidates there are
# n! orderings, so the smallest two-sided permutation p-value of Spearman's rho is 2 / n! (0.083 at
# n = 4, 0.017 at n = 5): below 5 no agreement can be told from chance at the 5% level, and the
# bootstrap resamples of a handful of candidates collapse the interval (three print
# [+1.000, +1.000]). Outputs warn below it.
MIN_CANDIDATES = 5
# Elements per chunk of the O(n_draws * n) vectorised kernels.
_CHUNK = 1 << 20


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
def _as_float(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)  # None -> nan
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-d vector, got shape {arr.shape}")
    return arr


def _paired(score: Any, reference: Any) -> tuple[np.ndarray, np.ndarray, int, int]:
    """The candidates with a reference value and a score, a score of ``-inf`` (a value that could
    not be computed, ranked last) replaced by one below every finite score, so the ``-inf`` ones tie
    for last place; returns ``(score, reference, dropped, last)``."""
    s = _as_float(score, "score")
    r = _as_float(reference, "reference")
    if s.shape != r.shape:
        raise ValueError(f"score and reference differ in length: {s.size} != {r.size}")
    last = s == -np.inf
    keep = (np.isfinite(s) | last) & np.isfinite(r)
    s, r, last = s[keep].copy(), r[keep], last[keep]
    if last.any():
        finite = s[~last]
        s[last] = (finite.min() - 1.0 - abs(finite.min())) if finite.size else 0.0
    return s, r, int(keep.size - keep.sum()), int(last.sum())


def _is_constant(x: np.ndarray) -> bool:
    return x.size == 0 or bool(np.all(x == x[0]))


def _rowwise_kendall(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b of each row of ``x`` with the same row of ``y`` (2-d arrays).

    Over the pairs ``i < j``: ``sum(sx * sy) / sqrt(sum(sx**2) * sum(sy**2))`` with ``sx = sign(x_i -
    x_j)``, which is ``(C - D) / sqrt((n0 - n1)(n0 - n2))``. O(n^2) per row, in chunks of about
    :data:`_CHUNK` pair entries; long rows use :func:`scipy.stats.kendalltau` instead."""
    rows, n = x.shape
    if n > 256:
        return np.array([stats.kendalltau(a, b, variant="b").statistic for a, b in zip(x, y)], dtype=float)
    iu = np.triu_indices(n, k=1)
    out = np.empty(rows)
    step = max(1, _CHUNK // max(1, iu[0].size))
    for a in range(0, rows, step):
        xs, ys = x[a:a + step], y[a:a + step]
        sx = np.sign(xs[:, iu[0]] - xs[:, iu[1]])
        sy = np.sign(ys[:, iu[0]] - ys[:, iu[1]])
        with np.errstate(invalid="ignore", divide="ignore"):
            out[a:a + step] = np.einsum("ij,ij->i", sx, sy) / np.sqrt(
                np.einsum("ij,ij->i", sx, sx) * np.einsum("ij,ij->i", sy, sy))
    return np.clip(out, -1.0, 1.0)


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``x`` with the same row of ``y`` (2-d arrays)."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    sxy = np.einsum("ij,ij->i", xc, yc)
    sxx = np.einsum("ij,ij->i", xc, xc)
    syy = np.einsum("ij,ij->i", yc, yc)
    with np.errstate(invalid="ignore", divide="ignore"):
        # sqrt(a*b) rather than sqrt(a)*sqrt(b): identical rows give exactly 1.
        r = sxy / np.sqrt(sxx * syy)
    return np.clip(r, -1.0, 1.0)


def _corrs(s: np.ndarray, r: np.ndarray) -> tuple[float, float, float]:
    """(Spearman rho, Kendall tau-b, Pearson r); NaN if either side is constant."""
    if s.size < 2 or _is_constant(s) or _is_constant(r):
        return _NAN, _NAN, _NAN
    rho = float(_snap_unit(stats.spearmanr(s, r).statistic))
    tau = float(_snap_unit(stats.kendalltau(s, r, variant="b").statistic))
    pr = float(stats.pearsonr(s, r).statistic)
    return rho, tau, pr


def _resample_ranks(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Average ranks of ``values[idx]`` within each row, without sorting rows.

    Equal to ``scipy.stats.rankdata(values[idx], axis=1)``: a resample only
    repeats original candidates, so ranks follow from per-row counts of the
    original tie groups (one sort of ``values`` instead of one per row).
    """
    n_rows = idx.shape[0]
    order = np.argsort(values, kind="stable")
    sv = values[order]
    gid_sorted = np.cumsum(np.r_[True, sv[1:] != sv[:-1]]) - 1
    n_groups = int(gid_sorted[-1]) + 1
    gid = np.empty(values.size, dtype=np.intp)
    gid[order] = gid_sorted
    g = gid[idx]
    flat = (g + n_groups * np.arange(n_rows)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_rows * n_groups).reshape(n_rows, n_groups)
    before = np.cumsum(counts, axis=1) - counts
    return np.take_along_axis(before + (counts + 1) / 2.0, g, axis=1)


def _snap_unit(x):
    """Round rank correlations within a few ulp of +-1 to exactly +-1.

    Spearman's rho and Kendall's tau-b are ratios of integers (or half
    integers), so a value that close to +-1 is +-1 up to floating-point
    rounding (SciPy's tau-b, for one, divides by two square roots).
    """
    x = np.asarray(x, dtype=float)
    return np.where(np.abs(np.abs(x) - 1.0) <= 1e-14, np.sign(x), x)


def _interval(values: np.ndarray, ci: float) -> tuple[float, float]:
    if values.size == 0:
        return _NAN, _NAN
    lo, hi = np.percentile(values, [50.0 * (1.0 - ci), 50.0 * (1.0 + ci)])
    return float(lo), float(hi)


def resolve_k(spec: int | float, n: int) -> int:
    """Number of candidates meant by a top-k specification.

    An ``int`` is a count; a ``float`` in (0, 1] is a fraction of ``n``,
    rounded up.  The result is clipped to ``[1, n]`` (0 when ``n == 0``).
    """
    if isinstance(spec, (bool, np.bool_)):
        raise ValueError(f"top_k: expected an int count or a float fraction, got {spec!r}")
    if isinstance(spec, (int, np.integer)):
        if spec < 1:
            raise ValueError(f"top_k: count must be >= 1, got {spec}")
        k = int(spec)
    elif isinstance(spec, (float, np.floating)):
        if not 0.0 < float(spec) <= 1.0:
            raise ValueError(f"top_k: fraction must be in (0, 1], got {spec}")
        k = math.ceil(float(spec) * n)
    else:
        raise ValueError(f"top_k: expected an int count or a float fraction, got {spec!r}")
    return int(min(max(k, 1), n))


def top_k_indices(values: Any, k: int) -> np.ndarray:
    """Indices of the ``k`` largest values; ties go to the lower index."""
    v = np.asarray(values, dtype=float)
    order = np.argsort(-v, kind="stable")
    return order[:k]


def _tied_pairs(*columns: np.ndarray) -> int:
    """Number of pairs equal in every given column."""
    if len(columns) == 1:
        _, c = np.unique(columns[0], return_counts=True)
    else:
        _, c = np.unique(np.stack(columns, axis=1), axis=0, return_counts=True)
    c = c.astype(np.int64)
    return int(np.sum(c * (c - 1) // 2))


def pairwise_accuracy(score: Any, reference: Any) -> tuple[float, int]:
    """Fraction of pairs ordered by ``score`` the same way as by ``reference``.

    Only pairs with ``reference[i] != reference[j]`` count; a pair tied in
    ``score`` counts 0.5.  Returns ``(accuracy, number_of_counted_pairs)``;
    accuracy is NaN when no pair qualifies.  Inputs must already be finite.

    Runs in O(n log n): the concordant-minus-discordant count is recovered
    (as an integer) from SciPy's Kendall tau-b and the tie counts.
    """
    s = np.asarray(score, dtype=float)
    r = np.asarray(reference, dtype=float)
    n = int(s.size)
    total = n * (n - 1) // 2
    ties_s, ties_r = _tied_pairs(s), _tied_pairs(r)
    pairs = total - ties_r  # reference differs
    if pairs == 0:
        return _NAN, 0
    score_only_ties = ties_s - _tied_pairs(s, r)  # score tied, reference differs
    if ties_s == total:
        con_minus_dis = 0
    else:
        tau = float(stats.kendalltau(s, r, variant="b").statistic)
        con_minus_dis = round(tau * math.sqrt(total - ties_s) * math.sqrt(total - ties_r))
    concordant = (pairs - score_only_ties + con_minus_dis) // 2
    return (concordant + 0.5 * score_only_ties) / pairs, int(pairs)


# --------------------------------------------------------------------------- #
# agreement
# --------------------------------------------------------------------------- #
def agreement(
    score: Any,
    reference: Any,
    *,
    n_boot: int = 1000,
    ci: float = 0.95,
    n_perm: int = 1000,
    seed: int = 0,
    top_k: Sequence[int | float] = (0.1, 0.25),
) -> dict:
    """How well ``score`` ranks candidates compared with ``reference``.

    Parameters
    ----------
    score, reference
        One value per candidate architecture, higher is better for both.
        Missing entries (None/NaN/inf) are dropped pairwise, except a score of
        ``-inf`` (a value that could not be computed, e.g. a proxy on a
        singular network), which ranks last, tied with the other ``-inf``
        ones; Pearson's r is then NaN (a last place has no value).
    n_boot
        Bootstrap resamples of the candidate indices (with replacement) for the
        percentile confidence intervals.  Resamples in which either side is
        constant are skipped; ``n_boot_used`` says how many remained.
    ci
        Coverage of the percentile interval, e.g. 0.95.
    n_perm
        Permutations of the score for the Spearman p-value
        ``(count(|rho_perm| >= |rho|) + 1) / (n_perm + 1)``.
    seed
        Seed of the ``numpy.random.default_rng`` generator used, in this order,
        for the bootstrap and then the permutations.
    top_k
        Each entry an ``int`` count or a ``float`` fraction of ``n`` (rounded
        up, at least 1).

    Returns
    -------
    dict with keys

    - ``n``: candidates used; ``n_dropped``: candidates removed as missing;
      ``n_nonfinite``: candidates among ``n`` ranked last for a ``-inf`` score.
    - ``spearman``: ``{"value", "ci_low", "ci_high", "p_perm"}``.
    - ``kendall`` (tau-b) and ``pearson``: ``{"value", "ci_low", "ci_high"}``.
    - ``ci``, ``n_boot``, ``n_boot_used``, ``n_perm``.
    - ``top_k``: list of ``{"spec", "k", "overlap", "precision_at_k"}``;
      ``overlap = |top_k(score) & top_k(reference)| / k`` and
      ``precision_at_k`` is the fraction of the score's top-k found in the
      reference's top-k set.  Both sets have exactly ``k`` members (ties go to
      the lower index), so the two numbers coincide.
    - ``pairwise_accuracy``: fraction of pairs with different reference values
      that the score orders the same way (score ties count 0.5);
      ``n_pairs``: number of such pairs.

    With fewer than 3 usable candidates every statistic is NaN.  If one side
    is constant the correlations, intervals and p-value are NaN.
    """
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if n_boot < 0 or n_perm < 0:
        raise ValueError("n_boot and n_perm must be >= 0")
    s, r, n_dropped, n_last = _paired(score, reference)
    n = int(s.size)

    def _block(value=_NAN, lo=_NAN, hi=_NAN):
        return {"value": value, "ci_low": lo, "ci_high": hi}

    out: dict = {
        "n": n,
        "n_dropped": n_dropped,
        "n_nonfinite": n_last,
        "spearman": {**_block(), "p_perm": _NAN},
        "kendall": _block(),
        "pearson": _block(),
        "ci": float(ci),
        "n_boot": int(n_boot),
        "n_boot_used": 0,
        "n_perm": int(n_perm),
        "top_k": [],
        "pairwise_accuracy": _NAN,
        "n_pairs": 0,
    }
    specs = [int(k) if isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))
             else float(k) if isinstance(k, (float, np.floating)) else k for k in top_k]
    if n < 3:
        for spec in specs:
            k = resolve_k(spec, n)
            out["top_k"].append({"spec": spec, "k": k, "overlap": _NAN, "precision_at_k": _NAN})
        return out

    # top-k and pairwise accuracy do not need a non-constant score
    for spec in specs:
        k = resolve_k(spec, n)
        top_s = top_k_indices(s, k)
        top_r = top_k_indices(r, k)
        common = np.intersect1d(top_s, top_r).size
        out["top_k"].append({
            "spec": spec,
            "k": k,
            "overlap": common / k,
            "precision_at_k": float(np.isin(top_s, top_r).mean()),
        })
    acc, pairs = pairwise_accuracy(s, r)
    out["pairwise_accuracy"] = float(acc)
    out["n_pairs"] = pairs

    rho, tau, pr = _corrs(s, r)
    if math.isnan(rho):
        return out

    rng = np.random.default_rng(seed)

    # bootstrap over architectures
    boot: dict = {"spearman": [], "kendall": [], "pearson": []}
    rows = max(1, _CHUNK // n)
    for a in range(0, n_boot, rows):
        idx = rng.integers(0, n, size=(min(n_boot, a + rows) - a, n))
        bs, br = s[idx], r[idx]
        ok = ~(np.all(bs == bs[:, :1], axis=1) | np.all(br == br[:, :1], axis=1))
        if not ok.any():
            continue
        idx, bs, br = idx[ok], bs[ok], br[ok]
        ranks_s, ranks_r = _resample_ranks(s, idx), _resample_ranks(r, idx)
        boot["spearman"].append(_snap_unit(_rowwise_pearson(ranks_s, ranks_r)))
        boot["pearson"].append(_rowwise_pearson(bs, br))
        boot["kendall"].append(_snap_unit(_rowwise_kendall(bs, br)))
    boot = {k: np.concatenate(v) if v else np.empty(0) for k, v in boot.items()}
    out["n_boot_used"] = int(boot["spearman"].size)

    for name, value in (("spearman", rho), ("kendall", tau), ("pearson", pr)):
        if name == "pearson" and n_last:  # last place has a rank, not a value: no linear correlation
            continue
        lo, hi = _interval(boot[name], ci)
        out[name].update(value=value, ci_low=lo, ci_high=hi)

    # permutation p-value for Spearman: permuting ranks leaves them ranks
    if n_perm:
        rs = stats.rankdata(s)
        rr = stats.rankdata(r)
        extreme = 0
        rows = max(1, _CHUNK // n)
        tol = 1e-12 * max(1.0, abs(rho))
        for a in range(0, n_perm, rows):
            b = min(n_perm, a + rows)
            perm = rng.permuted(np.broadcast_to(rs, (b - a, n)), axis=1)
            rho_perm = _rowwise_pearson(perm, np.broadcast_to(rr, (b - a, n)))
            extreme += int(np.sum(np.abs(rho_perm) >= abs(rho) - tol))
        out["spearman"]["p_perm"] = (extreme + 1) / (n_perm + 1)
    return out
