"""Design spaces (Radosavovic et al. 2019, NDS): complexity-normalised error EDFs of two NAS cell
spaces and of ResNeXt-A/B, every model with the same training budget, compared by KS tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unnas.eval.edf import complexity_weights, edf, ks
from unnas.findings import FINDINGS, plots
from unnas.findings.base import NOT_AT_SCALE, PARTLY, REPRODUCED, Finding, Verdict
from unnas.findings.data import data_args

SPACES = ("nds-darts", "nds-nasnet", "nds-resnext-a", "nds-resnext-b")
CELL_SPACES = ("nds-darts", "nds-nasnet")  # the others are stage (ResNeXt) spaces
PAIRS = (("nds-darts", "nds-nasnet"), ("nds-resnext-b", "nds-resnext-a"))  # (better, worse) in the paper
ALPHA = 0.05


def space_budget(b, space: str) -> tuple[list, list, tuple]:
    """``space``'s fixed parameters, varied parameters and (min, max) FLOPs window in budget ``b``."""
    kind = "cell" if space in CELL_SPACES else "stage"
    return b[f"{kind}s"], b[f"{kind}_vary"], b[f"{kind}_flops"]


@FINDINGS.register("nds")
class NDS(Finding):
    title = "Design spaces compared by complexity-normalised error EDFs"
    paper = "Radosavovic et al. 2019, On Network Design Spaces for Visual Recognition (NDS)"
    claim = ("at controlled complexity (a FLOPs bound per pair, FLOPs-normalised EDFs) the DARTS cell space's "
             "error EDF lies left of NASNet's, and ResNeXt-B's left of ResNeXt-A's (KS test)")
    # cells / stages: fixed generator parameters; *_vary: sizes drawn per model (as NDS samples width and depth);
    # *_flops: the (min, max) FLOPs window both spaces of a pair are drawn from
    budgets = {
        "test": {"data": "tiny", "models": 2, "epochs": 1, "cells": ["width=4", "depth=2"], "cell_vary": [],
                 "cell_flops": (0, "3M"), "stages": ["depths=[1,1,1]"], "stage_vary": [], "stage_flops": (0, "40M")},
        "quick": {"data": "digits", "models": 6, "epochs": 2, "cells": ["width=8", "depth=5"], "cell_vary": [],
                  "cell_flops": (0, "10M"), "stages": ["depths=[1,1,1]"], "stage_vary": [], "stage_flops": (0, "60M")},
        "full": {"data": "cifar10", "models": 12, "epochs": 2, "cells": [], "cell_vary": ["width=6,8,10", "depth=4,5"],
                 "cell_flops": ("10M", "20M"), "stages": ["depths=[1,1,1]"], "stage_vary": [],
                 "stage_flops": ("20M", "40M")},
    }

    def run(self, ctx, b) -> dict:
        spaces = {}
        for space in SPACES:
            params, vary, (lo, hi) = space_budget(b, space)
            rows = ctx.rank(space, ["--generator", space, *(["--params", *params] if params else []),
                                    *(["--vary", *vary] if vary else []), "--pretext", "supervised", "--num-archs",
                                    b["models"], "--epochs", b["epochs"], "--min-flops", lo, "--max-flops", hi,
                                    "--seed", ctx.seed, *data_args(ctx, b["data"])])
            rows = [r for r in rows if r["objective"] == "supervised"]
            spaces[space] = {"error": [1 - float(r["score"]) for r in rows], "flops": [float(r["flops"]) for r in rows]}
        tests = {}
        for better, worse in PAIRS:
            a, z = spaces[better], spaces[worse]
            box = (min(a["flops"] + z["flops"]), max(a["flops"] + z["flops"]))
            for s in (a, z):  # both populations of a pair on the same complexity bins
                s["weights"] = complexity_weights(s["flops"], n_bins=5, value_range=box).tolist()
            t = ks(a["error"], z["error"], a["weights"], z["weights"])
            tests[f"{better} vs {worse}"] = {"D": t["D"], "p_value": t["p_value"],
                                             "mean_error_better": float(np.average(a["error"], weights=a["weights"])),
                                             "mean_error_worse": float(np.average(z["error"], weights=z["weights"]))}
        return {"spaces": spaces, "ks": tests}

    def verdict(self, n) -> Verdict:
        parts, right, sig = [], 0, 0
        for name, t in n["ks"].items():
            ok = t["mean_error_better"] < t["mean_error_worse"]
            right += ok
            sig += ok and t["p_value"] < ALPHA
            parts.append(f"{name}: weighted mean error {100 * t['mean_error_better']:.1f}% vs "
                         f"{100 * t['mean_error_worse']:.1f}%, KS D={t['D']:.2f} p={t['p_value']:.3f}")
        text = "; ".join(parts)
        if sig == len(PAIRS):
            return Verdict(REPRODUCED, text)
        if right:
            return Verdict(PARTLY, text + f"; {right} of {len(PAIRS)} in the paper's direction, {sig} significant "
                                          f"at {ALPHA}")
        return Verdict(NOT_AT_SCALE, text + "; neither pair in the paper's direction")

    def figure(self, n, path: Path) -> None:
        fig, ax = plots.new("NDS: complexity-normalised error EDFs (same training budget per model)",
                            "test error (%)", "cumulative share of models (FLOPs-normalised)")
        for name, s in n["spaces"].items():
            x, y = edf(np.asarray(s["error"]) * 100, s["weights"])
            ax.step(np.r_[x[0], x], np.r_[0.0, y], where="post", label=f"{name} (n={len(s['error'])})")
        ax.legend(fontsize=8)
        plots.save(fig, path)
