"""Plots of a ranking run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from unnas.analysis import Ranking, fmt_corr  # noqa: E402


def scatter(rk: Ranking, objective: str, path: Path, score_label: str = "label-free score") -> Path:
    """Label-free score vs supervised accuracy, one point per candidate, with rho / tau and CIs."""
    fig = Figure(figsize=(5.2, 4.4), dpi=120)
    ax = fig.add_subplot()
    xs, ys = [], []
    for a in rk.arch_ids:
        x, y = rk.scores[objective].get(a, math.nan), rk.supervised.get(a, math.nan)
        if not (math.isnan(x) or math.isnan(y)):
            xs.append(100 * x)
            ys.append(100 * y)
    ax.scatter(xs, ys, s=28, alpha=0.8, edgecolor="black", linewidth=0.4)
    ag = rk.agreement.get(objective)
    if ag:
        ax.set_title(f"{objective}: n={ag['n']}\nSpearman {fmt_corr(ag['spearman'])}\n"
                     f"Kendall {fmt_corr(ag['kendall'])}", fontsize=9)
    ax.set_xlabel(f"{objective} {score_label} (%)")
    ax.set_ylabel("supervised test accuracy (%)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
