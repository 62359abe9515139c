"""Error empirical distribution functions (EDFs) of model populations.

Following "On Network Design Spaces for Visual Recognition" (Radosavovic et
al., 2019): a population of trained models is summarised by
``F(e) = fraction of models with error <= e``; populations with different
complexity distributions are compared with *normalized* EDFs, in which every
complexity bin carries the same total weight.

Missing errors (None/NaN/inf, e.g. diverged runs) are dropped together with
their weights.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from scipy import stats

__all__ = ["edf", "edf_at", "complexity_weights", "ks", "plot_edfs"]


def _prepare(errors: Any, weights: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Finite errors and their weights normalised to sum 1."""
    e = np.asarray(errors, dtype=float)
    if e.ndim != 1:
        raise ValueError(f"errors: expected a 1-d vector, got shape {e.shape}")
    if weights is None:
        w = np.ones_like(e)
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != e.shape:
            raise ValueError(f"weights: length {w.size} does not match errors length {e.size}")
        if np.any(w[np.isfinite(w)] < 0):
            raise ValueError("weights: must be non-negative")
    keep = np.isfinite(e) & np.isfinite(w)
    e, w = e[keep], w[keep]
    total = w.sum()
    if e.size == 0 or total <= 0:
        raise ValueError("errors: no finite values with positive weight")
    return e, w / total


def edf(errors: Any, weights: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Empirical distribution of ``errors``.

    Returns ``(x, F)``: the distinct finite error values in increasing order
    and ``F[i]`` = (weighted) fraction of models with error <= ``x[i]``.
    ``F[-1]`` is 1.  Weights need not be normalised.
    """
    e, w = _prepare(errors, weights)
    order = np.argsort(e, kind="stable")
    e, w = e[order], w[order]
    x, start = np.unique(e, return_index=True)
    cum = np.cumsum(np.add.reduceat(w, start))
    cum = np.minimum(cum, 1.0)
    cum[-1] = 1.0
    return x, cum


def edf_at(errors: Any, grid: Any, weights: Any = None) -> np.ndarray:
    """``F(g)`` for every ``g`` in ``grid`` (same shape as ``grid``)."""
    x, F = edf(errors, weights)
    g = np.asarray(grid, dtype=float)
    idx = np.searchsorted(x, g, side="right")
    out = np.concatenate([[0.0], F])[idx]
    return np.where(np.isnan(g), np.nan, out)


def complexity_weights(complexity: Any, n_bins: int = 20, log: bool = True,
                       value_range: tuple[float, float] | None = None) -> np.ndarray:
    """Weights that give every non-empty complexity bin the same total mass.

    ``complexity`` (e.g. parameters or FLOPs) is split into ``n_bins`` equal
    bins between its minimum and maximum (or ``value_range``: pass the range of
    all populations being compared so that they share the bins, as NDS does),
    equal in log space when ``log`` is true.  A model in bin ``b`` gets
    ``1 / (count_b * n_nonempty_bins)``, so the weights sum to 1.  Models with a
    missing complexity get weight 0.
    """
    c = np.asarray(complexity, dtype=float)
    if c.ndim != 1:
        raise ValueError(f"complexity: expected a 1-d vector, got shape {c.shape}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    ok = np.isfinite(c)
    if not ok.any():
        raise ValueError("complexity: no finite values")
    v = c[ok]
    if log:
        if np.any(v <= 0):
            raise ValueError("complexity: log-spaced bins need positive values")
        v = np.log(v)
    lo, hi = float(v.min()), float(v.max())
    if value_range is not None:
        r = np.asarray(value_range, dtype=float)
        if r.shape != (2,) or not np.isfinite(r).all() or r[0] > c[ok].min() or r[1] < c[ok].max() \
                or (log and r[0] <= 0):
            raise ValueError(f"value_range {tuple(value_range)} must be finite and contain every value "
                             f"({c[ok].min():g} .. {c[ok].max():g}){' and be positive' if log else ''}")
        lo, hi = (float(np.log(r[0])), float(np.log(r[1]))) if log else (float(r[0]), float(r[1]))
    if hi > lo:
        edges = np.linspace(lo, hi, n_bins + 1)
        # interior edges only: bin 0 is [lo, e1), the last bin is [e_{n-1}, hi]
        b = np.digitize(v, edges[1:-1], right=False)
    else:
        b = np.zeros(v.size, dtype=int)
    counts = np.bincount(b, minlength=n_bins)
    nonempty = int(np.count_nonzero(counts))
    w = np.zeros(c.size)
    w[ok] = 1.0 / (counts[b] * nonempty)
    return w


def ks(errors_a: Any, errors_b: Any, weights_a: Any = None, weights_b: Any = None) -> dict:
    """Two-sample Kolmogorov-Smirnov test between two error populations.

    Without weights this is :func:`scipy.stats.ks_2samp` (two-sided, its
    default method).  If either population is weighted (the other counts as
    uniformly weighted), ``D = sup |F_a - F_b|`` over the pooled sample points
    and the p-value comes from the asymptotic Kolmogorov distribution,
    ``P(K > D * sqrt(n_a n_b / (n_a + n_b)))``, with effective sample sizes
    ``n = (sum w)^2 / sum w^2``.

    Returns ``{"D", "p_value", "n_a", "n_b", "weighted"}`` where ``n_a`` and
    ``n_b`` are the (effective) sample sizes.
    """
    if weights_a is None and weights_b is None:
        a, _ = _prepare(errors_a)
        b, _ = _prepare(errors_b)
        res = stats.ks_2samp(a, b)
        return {
            "D": float(res.statistic),
            "p_value": float(res.pvalue),
            "n_a": float(a.size),
            "n_b": float(b.size),
            "weighted": False,
        }
    a, wa = _prepare(errors_a, weights_a)
    b, wb = _prepare(errors_b, weights_b)
    pooled = np.unique(np.concatenate([a, b]))
    D = float(np.max(np.abs(edf_at(a, pooled, wa) - edf_at(b, pooled, wb))))
    na = 1.0 / float(np.sum(wa**2))  # weights already sum to 1
    nb = 1.0 / float(np.sum(wb**2))
    en = na * nb / (na + nb)
    p = float(np.clip(stats.kstwobign.sf(D * math.sqrt(en)), 0.0, 1.0))
    return {"D": D, "p_value": p, "n_a": na, "n_b": nb, "weighted": True}


def plot_edfs(
    populations: Mapping[str, Any],
    ax: Any = None,
    weights: Mapping[str, Any] | None = None,
    xlabel: str = "error (%)",
):
    """Plot one EDF step line per population on one axis.

    ``populations`` maps a legend label to its errors; ``weights`` optionally
    maps some of the same labels to per-model weights (e.g. from
    :func:`complexity_weights`).  Without ``ax`` a new figure is created
    without pyplot, so it works under any backend.  Returns the axis.
    """
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(5, 3.5)).add_subplot(1, 1, 1)
    weights = weights or {}
    for name, errors in populations.items():
        x, F = edf(errors, weights.get(name))
        n = int(np.isfinite(np.asarray(errors, dtype=float)).sum())
        xs = np.concatenate([[x[0]], x])
        Fs = np.concatenate([[0.0], F])
        ax.step(xs, Fs, where="post", label=f"{name} (n={n})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("normalized EDF" if weights else "cumulative fraction of models")
    ax.set_ylim(0.0, 1.0)
    ax.legend()
    return ax
