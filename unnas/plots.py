"""The report's plots: matplotlib's object API with the Agg canvas (no display, no pyplot state).

Each function draws one figure from a :class:`~unnas.scores.Ranking` (or a search trajectory) and
saves it as a PNG; :mod:`unnas.report` embeds them in ``report.html``.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from unnas.analysis import Ranking, fmt_corr  # noqa: E402
from unnas.eval.edf import complexity_weights, plot_edfs  # noqa: E402
from unnas.runner import SUPERVISED  # noqa: E402
from unnas.scores import REFERENCE  # noqa: E402

DPI = 120
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
EDF_BINS = 20  # NDS: 20 complexity bins


def _color(i: int) -> str:
    return f"C{i % 10}"


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


# ------------------------------------------------------------------ plots
def _axis_values(rk: Ranking, name: str) -> tuple[np.ndarray, str]:
    """A column as plotted: accuracies in percent, log-scaled proxies as ranked (log10 already:
    :func:`unnas.analysis.log_scaled`), others as they are; ``-inf`` (ranked last) is not drawn."""
    v = rk.column(name)
    if name in rk.percent:
        return 100 * v, " (%)"
    col = rk.columns.get(name)
    if col is not None and col.log_scale:
        return v, " (log10)"
    return v, ""


def reference_label(rk: Ranking) -> str:
    return "supervised test accuracy" if rk.reference_name == SUPERVISED else f"{rk.reference_name} accuracy"


KIND_LABELS = {"objective": "label-free held-out score", "ensemble": "rank ensemble (rule in its name), label-free",
               "proxy": "zero-cost proxy, label-free", "rung": "label-free score at the rung",
               "probe": "probe accuracy, uses labels", "supervised": "supervised accuracy, uses labels",
               "baseline": "label-free", "trained": "score of the trained network, label-free"}


def column_label(rk: Ranking, name: str) -> str:
    """An axis / legend label for a column that says what it is and whether it reads labels."""
    kind = rk.columns[name].kind if name in rk.columns else ""
    return f"{name} {KIND_LABELS.get(kind, 'score')}"


def scatter(rk: Ranking, objective: str, path: Path) -> Path:
    """A score column vs the reference accuracy, one point per candidate, with rho / tau and CIs.

    Candidates are marked by generator when the ranking mixes several."""
    fig = Figure(figsize=(5.6, 4.8), dpi=DPI)
    ax = fig.add_subplot()
    gens = rk.generator_names or [""]
    (x_all, unit), y_all = _axis_values(rk, objective), 100 * rk.column(REFERENCE)
    for i, g in enumerate(gens):
        sel = np.array([len(gens) == 1 or rk.generators.get(a) == g for a in rk.arch_ids], dtype=bool)
        ok = sel & np.isfinite(x_all) & np.isfinite(y_all)
        ax.scatter(x_all[ok], y_all[ok], s=30, alpha=0.85, marker=MARKERS[i % len(MARKERS)], color=_color(i),
                   edgecolor="black", linewidth=0.4, label=f"{g} (n={int(ok.sum())})" if len(gens) > 1 else None)
    ag = rk.agreement.get(objective)
    title = objective
    if ag:
        title = (f"{objective}: n={ag['n']} candidates\nSpearman rho {fmt_corr(ag['spearman'])}\n"
                 f"Kendall tau {fmt_corr(ag['kendall'])}  (95% bootstrap CI)")
    nc = rk.noise_ceiling.get(objective, math.nan)
    if nc == nc:
        title += f"\nseed-to-seed rho {nc:+.3f}"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"{column_label(rk, objective)}{unit}")
    ax.set_ylabel(f"{reference_label(rk)} (%)")
    if len(gens) > 1:
        ax.legend(title="generator", fontsize=8, title_fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def _finite_pops(pops: dict[str, dict[str, np.ndarray]], need: str | None = None) -> dict[str, dict]:
    out = {}
    for name, p in pops.items():
        ok = np.isfinite(p["error"])
        if need is not None:
            ok &= np.isfinite(p[need]) & (p[need] > 0)
        if ok.any():
            out[name] = p
    return out


def edf_plot(pops: dict[str, dict[str, np.ndarray]], path: Path, title: str, xlabel: str,
             normalize_by: str | None = "params") -> Path:
    """EDFs of the populations' errors on one axis (``unnas.eval.edf.plot_edfs``); with ``normalize_by``
    a second panel shows the complexity-normalized EDFs (NDS: each of 20 log-spaced bins of the
    measure carries equal weight; the bins span the range of all populations together, so every
    population is weighted on the same bins)."""
    norm = _finite_pops(pops, normalize_by) if normalize_by else {}
    panels = 2 if norm else 1
    fig = Figure(figsize=(5.4 * panels, 4.2), dpi=DPI)
    ax = fig.add_subplot(1, panels, 1)
    plot_edfs({k: p["error"] for k, p in pops.items()}, ax=ax, xlabel=xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if norm:
        ax2 = fig.add_subplot(1, panels, 2)
        weights = {}
        valid = {k: np.isfinite(p["error"]) & np.isfinite(p[normalize_by]) & (p[normalize_by] > 0)
                 for k, p in norm.items()}
        shared = np.concatenate([p[normalize_by][valid[k]] for k, p in norm.items()])
        for k, p in norm.items():
            ok = valid[k]
            w = np.zeros(p["error"].size)
            w[ok] = complexity_weights(p[normalize_by][ok], n_bins=EDF_BINS,
                                       value_range=(float(shared.min()), float(shared.max())))
            weights[k] = w
        plot_edfs({k: p["error"] for k, p in norm.items()}, ax=ax2, weights=weights, xlabel=xlabel)
        ax2.set_title(f"{normalize_by}-normalized EDF ({EDF_BINS} log bins)", fontsize=10)
        ax2.grid(alpha=0.3)
    for a in fig.axes:
        if a.get_legend():
            a.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def random_experiment_plot(curves: dict[str, dict], path: Path, reference: str = "supervised test accuracy") -> Path:
    """Supervised accuracy of the best of m random candidates, picked by each objective's score,
    by the supervised accuracy itself (oracle) and at random. Lines: exact expectation over all
    m-subsets; bands: +-1 standard deviation of the pick's accuracy."""
    fig = Figure(figsize=(6.4, 4.6), dpi=DPI)
    ax = fig.add_subplot()
    ref = curves["reference"]

    def line(res: dict, rule: str, label: str, color: str, style: str = "-") -> None:
        m = np.asarray(res["m"], dtype=float)
        mu = 100 * np.asarray(res[rule]["expected"])
        sd = 100 * np.asarray(res[rule]["expected_std"])
        ax.plot(m, mu, style, color=color, marker="o", markersize=3.5, label=label)
        ax.fill_between(m, mu - sd, mu + sd, color=color, alpha=0.08, linewidth=0)

    line(ref, "oracle", f"best by {reference} (oracle)", "black", "--")
    objs = [o for o in curves if o != "reference"]
    for i, o in enumerate(objs):
        line(curves[o], "proxy", f"best by {o}", _color(i))
    line(ref, "random", "random pick (population mean)", "grey", ":")
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel("m = number of candidates sampled")
    ax.set_ylabel(f"{reference} of the pick (%)")
    ax.set_title(f"random experiment: best of m of the n={ref['n']} candidates with every score\n"
                 f"line = exact expectation over all m-subsets, band = +-1 std", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def _engineering_log_ticks(axis, lo: float, hi: float) -> None:
    """Readable ticks on a log axis: 20k, 50k, 100k, 2M (more ticks per decade on short ranges)."""
    decades = math.log10(hi / lo) if hi > lo else 0.0
    subs = (1.0,) if decades >= 2 else (1.0, 2.0, 5.0) if decades >= 0.6 else tuple(range(1, 10))
    axis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=subs))
    axis.set_major_formatter(matplotlib.ticker.EngFormatter(sep=""))
    axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def complexity_plot(rk: Ranking, path: Path, comparison: list[dict] | None = None) -> Path:
    """Accuracy (supervised and each objective's label-free score) against parameters and FLOPs,
    log x axis; colour = series, marker = generator. Panel titles give Spearman rho of the measure
    with the supervised accuracy (the training-free baseline)."""
    series = ([REFERENCE] if rk.reference else []) + [o for o in rk.objectives if o in rk.percent]
    gens = rk.generator_names or [""]
    fig = Figure(figsize=(11.0, 4.6), dpi=DPI)
    base = {r["name"]: r["agreement"] for r in (comparison or []) if r["kind"] == "baseline"}
    for j, (measure, unit) in enumerate((("params", "parameters"), ("flops", "FLOPs"))):
        ax = fig.add_subplot(1, 2, j + 1)
        x = rk.column(measure)
        for i, s in enumerate(series):
            y = 100 * rk.column(s)
            for k, g in enumerate(gens):
                sel = np.array([len(gens) == 1 or rk.generators.get(a) == g for a in rk.arch_ids], dtype=bool)
                ok = sel & np.isfinite(x) & np.isfinite(y)
                name = reference_label(rk) if s == REFERENCE else column_label(rk, s)
                ax.scatter(x[ok], y[ok], s=26, marker=MARKERS[k % len(MARKERS)], alpha=0.8,
                           color="black" if s == REFERENCE else _color(i), edgecolor="black",
                           linewidth=0.4, label=name if k == 0 else None)
        fx = x[np.isfinite(x)]
        if fx.size and np.all(fx > 0):
            ax.set_xscale("log")
            _engineering_log_ticks(ax.xaxis, fx.min(), fx.max())
            ax.set_xlabel(f"{unit} (log scale)")
        else:
            ax.set_xlabel(unit)
        ax.set_ylabel("accuracy (%)")
        ag = base.get(measure)
        ax.set_title(f"{measure} vs accuracy" + (f"\nSpearman({measure}, {rk.reference_name}) "
                                                  f"{fmt_corr(ag['spearman'])}" if ag else ""), fontsize=9)
        ax.grid(alpha=0.3, which="both")
    handles, labels = fig.axes[0].get_legend_handles_labels()
    if len(gens) > 1:
        from matplotlib.lines import Line2D

        handles += [Line2D([], [], linestyle="", marker=MARKERS[k % len(MARKERS)], color="grey",
                           markeredgecolor="black") for k in range(len(gens))]
        labels += [f"generator {g}" for g in gens]
    fig.tight_layout(rect=(0, 0.1 if handles else 0, 1, 1))
    if handles:
        fig.legend(handles, labels, fontsize=9, loc="lower center", ncol=min(len(labels), 5), frameon=False)
    return _save(fig, path)


def trajectory_plot(search: dict, path: Path) -> Path:
    """A search's best score so far against the candidates evaluated and against job time (left,
    right); with a reference table, the reference accuracy of the best-so-far candidate too."""
    traj = search.get("trajectory") or []
    fig = Figure(figsize=(11.0, 4.2), dpi=DPI)
    n = np.array([t["n"] for t in traj], dtype=float)
    secs = np.array([t["job_seconds"] for t in traj], dtype=float) / 60.0
    best = np.array([t["best"] if math.isfinite(t["best"]) else np.nan for t in traj], dtype=float)
    ref = None
    if traj and "reference" in traj[0]:
        ref, cur, top = [], -math.inf, None
        for t in traj:
            if t["status"] == "done" and t["score"] == t["best"] and t["score"] > cur:
                cur, top = t["score"], t.get("reference")
            ref.append(np.nan if top is None else 100 * top)
        ref = np.array(ref, dtype=float)
    for j, (x, label) in enumerate(((n, "candidates evaluated"), (secs, "job time (minutes)"))):
        ax = fig.add_subplot(1, 2, j + 1)
        ax.step(x, best, where="post", color="C0", label=f"best {search.get('score', 'score')} so far")
        if ref is not None:
            ax2 = ax.twinx()
            ax2.step(x, ref, where="post", color="C3", linestyle="--", label="its reference accuracy")
            ax2.set_ylabel("reference accuracy of the best so far (%)")
        ax.set_xlabel(label)
        ax.set_ylabel("best score so far")
        ax.grid(alpha=0.3)
        ax.set_title(f"{search.get('strategy', 'search')}: {len(traj)} candidates", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def agreement_plot(comparison: list[dict], path: Path, reference: str = "supervised test accuracy") -> Path:
    """Spearman rho with its 95% interval of every column of ``comparison`` (rows of
    :func:`unnas.analysis.compare_objectives`), one line each, grouped by kind; columns that read
    labels are drawn hollow."""
    rows = [r for r in comparison if math.isfinite(r["agreement"]["spearman"]["value"])]
    fig = Figure(figsize=(6.4, 0.9 + 0.32 * max(1, len(rows))), dpi=DPI)
    ax = fig.add_subplot()
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    for i, r in enumerate(rows):
        sp = r["agreement"]["spearman"]
        y = len(rows) - 1 - i
        lo, hi = sp["ci_low"], sp["ci_high"]
        c = _color(kinds.index(r["kind"]))
        if lo is not None and math.isfinite(lo):
            ax.plot([lo, hi], [y, y], color=c, lw=2)
        ax.plot([sp["value"]], [y], "o", color=c, mfc="white" if r["uses_labels"] else c, ms=6)
    ax.set_yticks(range(len(rows)), [f"{r['name']}{' *' if r['uses_labels'] else ''}" for r in reversed(rows)],
                  fontsize=8)
    ax.axvline(0.0, color="0.5", lw=0.8, ls="--")
    ax.set_xlim(-1.05, 1.05)
    ax.set_xlabel(f"Spearman rho with the {reference} (95% CI)")
    ax.set_title("agreement of every score (* reads labels)", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return _save(fig, path)
