"""Relational graphs (You et al. 2020): accuracy of an MLP over WS-flex graphs as a function of
the clustering coefficient C and the average path length L, a sweet spot and a quadratic fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unnas.findings import FINDINGS, plots
from unnas.findings.base import NOT_AT_SCALE, PARTLY, REPRODUCED, Finding, Verdict
from unnas.findings.data import data_args

R2_MIN = 0.3  # the fit must explain this share of the variance for its maximum to count
MIN_GRAPHS = 12  # twice the fit's six coefficients: with fewer graphs the fit is not judged


def design(c, path) -> np.ndarray:
    c, path = np.asarray(c, float), np.asarray(path, float)
    return np.stack([np.ones_like(c), c, path, c * c, path * path, c * path], axis=-1)


def quadratic_fit(c, path, acc) -> dict:
    """Least squares ``acc ~ 1 + C + L + C^2 + L^2 + C L``; its R^2 and its maximum on the sampled box."""
    x, y = design(c, path), np.asarray(acc, float)
    beta = np.linalg.lstsq(x, y, rcond=None)[0]
    resid = y - x @ beta
    r2 = float(1 - resid @ resid / max(((y - y.mean()) ** 2).sum(), 1e-12))
    gc, gl = np.meshgrid(np.linspace(min(c), max(c), 41), np.linspace(min(path), max(path), 41))
    fit = design(gc, gl) @ beta
    i = np.unravel_index(int(np.argmax(fit)), fit.shape)
    interior = 0 < i[0] < fit.shape[0] - 1 and 0 < i[1] < fit.shape[1] - 1
    return {"coef": [float(v) for v in beta], "r2": r2, "best_C": float(gc[i]), "best_L": float(gl[i]),
            "best_acc": float(fit[i]), "interior": bool(interior)}


@FINDINGS.register("relational")
class Relational(Finding):
    title = "Relational graphs: an accuracy sweet spot in (clustering C, path length L)"
    paper = "You et al. 2020, Graph Structure of Neural Networks"
    claim = ("over WS-flex relational graphs at equal FLOPs, an MLP's accuracy is a smooth function of C and L "
             "(a quadratic fits it) with a sweet spot inside the sampled range")
    budgets = {
        "test": {"data": "tiny", "graphs": 6, "epochs": 1, "params": ["width=16", "layers=2", "nodes=8"]},
        "quick": {"data": "digits", "graphs": 16, "epochs": 3, "params": ["width=64", "layers=5", "nodes=16"]},
        "full": {"data": "cifar10", "graphs": 48, "epochs": 10,
                 "params": ["width=256", "layers=5", "nodes=32", "resolution=16"]},
    }

    def run(self, ctx, b) -> dict:
        from unnas.spec import get_generator

        rows = ctx.rank("relational-mlp", ["--generator", "relational-mlp", "--params", *b["params"], "--pretext",
                                           "supervised", "--num-archs", b["graphs"], "--epochs", b["epochs"],
                                           "--seed", ctx.seed, *data_args(ctx, b["data"])])
        gen = get_generator("relational-mlp")
        graphs = []
        for r in rows:
            m = gen.measures(r["spec"]["params"], r["spec"]["seed"])
            graphs.append({"C": m["C"], "L": m["L"], "acc": float(r["score"]), "flops": float(r["flops"])})
        fit = quadratic_fit([g["C"] for g in graphs], [g["L"] for g in graphs], [g["acc"] for g in graphs])
        return {"graphs": graphs, "fit": fit}

    def verdict(self, n) -> Verdict:
        f = n["fit"]
        text = (f"quadratic fit R^2 {f['r2']:.2f} over {len(n['graphs'])} graphs; its maximum {100 * f['best_acc']:.1f}% "
                f"at C={f['best_C']:.2f}, L={f['best_L']:.2f} ({'inside' if f['interior'] else 'on the edge of'} the "
                f"sampled range)")
        if len(n["graphs"]) < MIN_GRAPHS:
            return Verdict(NOT_AT_SCALE, text + f"; fewer than {MIN_GRAPHS} graphs, too few to judge a six-coefficient fit")
        if f["interior"] and f["r2"] >= R2_MIN:
            return Verdict(REPRODUCED, text)
        if f["interior"] or f["r2"] >= R2_MIN:
            return Verdict(PARTLY, text + (f"; the fit explains less than {R2_MIN:.0%}" if f["interior"]
                                           else "; no interior sweet spot"))
        return Verdict(NOT_AT_SCALE, text + f"; the fit explains less than {R2_MIN:.0%} and has no interior maximum")

    def figure(self, n, path: Path) -> None:
        g, f = n["graphs"], n["fit"]
        c, ln, acc = (np.array([x[k] for x in g]) for k in ("C", "L", "acc"))
        fig, ax = plots.new("Relational MLP: accuracy over graph measures", "clustering coefficient C",
                            "average path length L")
        gc, gl = np.meshgrid(np.linspace(c.min(), c.max(), 60), np.linspace(ln.min(), ln.max(), 60))
        levels = np.linspace(100 * acc.min(), 100 * acc.max() + 1e-6, 12)  # the fit shown over the measured range
        surf = ax.contourf(gc, gl, 100 * (design(gc, gl) @ np.array(f["coef"])), levels=levels, cmap="viridis",
                           alpha=0.8, extend="both")
        ax.scatter(c, ln, c=100 * acc, cmap="viridis", vmin=levels[0], vmax=levels[-1], edgecolors="k",
                   label="trained graphs (colour: accuracy)")
        ax.plot([f["best_C"]], [f["best_L"]], "r*", markersize=16, label="sweet spot (fit maximum)")
        fig.colorbar(surf, ax=ax, label=f"test accuracy (%), quadratic fit (R² = {f['r2']:.2f})")
        ax.legend(fontsize=8, loc="upper right")
        plots.save(fig, path)
