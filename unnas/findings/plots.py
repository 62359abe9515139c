"""Figure helpers shared by the findings: every figure is a titled PNG with labelled axes and units."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def new(title: str, xlabel: str, ylabel: str, size=(6.4, 4.2)):
    fig, ax = plt.subplots(figsize=size)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    return fig, ax


def save(fig, path: Path, note: str = "") -> None:
    if note:
        fig.text(0.01, 0.01, note, fontsize=7, color="0.35")
    fig.tight_layout(rect=(0, 0.03 if note else 0, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def groups_bar(ax, stats: Mapping[str, Mapping[str, float]], scale: float = 100.0, label: str = "") -> None:
    """Mean +- std per group (``{"group": {"mean", "std", "n"}}``), with every group's n."""
    names = list(stats)
    means = [stats[k]["mean"] * scale for k in names]
    stds = [stats[k]["std"] * scale for k in names]
    ax.bar(range(len(names)), means, yerr=stds, capsize=4, color="tab:blue", alpha=0.75, label=label or None)
    ax.set_xticks(range(len(names)), [f"{k}\n(n={stats[k]['n']})" for k in names])


def points(ax, xs: Sequence[float], ys: Sequence[float], label: str, **kw) -> None:
    ax.plot(xs, ys, "o", label=label, alpha=0.8, **kw)
