"""UnNAS (Liu et al. 2020): label-free pretext tasks rank architectures as supervised training does
(sample-based), and a DARTS search driven by the rotation loss finds a cell as good as one driven by
labels (search-based)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from unnas.findings import FINDINGS, plots
from unnas.findings.base import NOT_AT_SCALE, PARTLY, REPRODUCED, Finding, Verdict, accuracies, mean_std, separated
from unnas.findings.data import data_args

PRETEXTS = ("rotation", "jigsaw", "colorization", "moco")


@FINDINGS.register("unnas")
class UnNAS(Finding):
    title = "UnNAS: pretext tasks rank architectures as labels do; a rotation-driven DARTS cell matches a supervised one"
    paper = "Liu et al. 2020, Are Labels Necessary for Neural Architecture Search?"
    claim = ("over one population of DARTS-space cells, each pretext task's accuracy correlates positively with "
             "supervised accuracy at the same budget; DARTS with the rotation loss finds a cell that trains as well "
             "as the cell DARTS finds with labels")
    budgets = {
        "test": {"data": "tiny", "archs": 3, "epochs": 1, "cells": ["width=4", "depth=2"], "search_epochs": 1,
                 "seeds": 1},
        "quick": {"data": "cifar10-small", "archs": 6, "epochs": 1, "cells": ["width=4", "depth=3"],
                  "search_epochs": 1, "seeds": 2},
        "full": {"data": "cifar10-2k", "archs": 12, "epochs": 2, "cells": ["width=6", "depth=4"], "search_epochs": 1,
                 "seeds": 2},
    }

    def run(self, ctx, b) -> dict:
        data = data_args(ctx, b["data"])
        rows = ctx.rank("population", ["--generator", "nds-darts", "--params", *b["cells"], "--pretext",
                                       ",".join(PRETEXTS), "--num-archs", b["archs"], "--epochs", b["epochs"],
                                       "--seed", ctx.seed, *data])
        by_arch: dict = defaultdict(dict)
        for r in rows:
            by_arch[r["arch_id"]][r["objective"]] = float(r["score"])
        agreement = ctx.ranking("population")["agreement"]
        sample = {p: {"spearman": agreement[p]["spearman"]["value"], "ci_low": agreement[p]["spearman"]["ci_low"],
                      "ci_high": agreement[p]["spearman"]["ci_high"],
                      "points": [[a[p], a["supervised"]] for a in by_arch.values() if p in a and "supervised" in a]}
                  for p in PRETEXTS}
        derived = {}
        for signal in ("rotation", "supervised"):
            res = ctx.search(f"darts-{signal}", ["--method", "darts", "--generator", "nds-darts", "--params",
                                                 *b["cells"], "--pretext", signal, "--epochs", b["search_epochs"],
                                                 "--seed", ctx.seed, *data])
            spec = res["spec"] if isinstance(res["spec"], dict) else json.loads(res["spec"])
            trained = ctx.rank(f"derived-{signal}", ["--generator", "nds-darts", "--params",
                                                     *(f"{k}={json.dumps(v)}" for k, v in spec["params"].items()),
                                                     "--pretext", "supervised", "--num-archs", 1, "--seeds", b["seeds"],
                                                     "--epochs", b["epochs"], "--seed", ctx.seed, *data])
            derived[signal] = {"arch_id": res["arch_id"], **mean_std(accuracies(trained))}
        return {"sample_based": sample, "search_based": derived}

    def verdict(self, n) -> Verdict:
        s, d = n["sample_based"], n["search_based"]
        positive = [p for p in PRETEXTS if s[p]["ci_low"] > 0]
        rot, sup = d["rotation"], d["supervised"]
        search_ok = rot["mean"] >= sup["mean"] or not separated(sup, rot)
        text = (", ".join(f"{p} rho {s[p]['spearman']:+.2f} [{s[p]['ci_low']:+.2f}, {s[p]['ci_high']:+.2f}]"
                          for p in PRETEXTS)
                + f"; DARTS cells: rotation-driven {100 * rot['mean']:.1f}% vs label-driven {100 * sup['mean']:.1f}% "
                  f"(n={rot['n']} seeds each)")
        if len(positive) == len(PRETEXTS) and search_ok:
            return Verdict(REPRODUCED, text)
        if positive or search_ok:
            return Verdict(PARTLY, text + f"; {len(positive)} of {len(PRETEXTS)} pretexts with a 95% interval above "
                                          f"0; search-based {'matches' if search_ok else 'falls behind'}")
        return Verdict(NOT_AT_SCALE, text + "; no pretext's interval is above 0 and the rotation cell falls behind")

    def figure(self, n, path: Path) -> None:
        fig, axes = plots.plt.subplots(1, len(PRETEXTS) + 1, figsize=(15, 3.6))
        for ax, p in zip(axes, PRETEXTS):
            s = n["sample_based"][p]
            ax.plot([100 * x for x, _ in s["points"]], [100 * y for _, y in s["points"]], "o", label="one network")
            ax.set(title=f"{p}: Spearman {s['spearman']:+.2f}", xlabel=f"{p} held-out score (%), label-free",
                   ylabel="supervised accuracy (%)")
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
        d, ax = n["search_based"], axes[-1]
        names = list(d)
        ax.bar(names, [100 * d[k]["mean"] for k in names], yerr=[100 * d[k]["std"] for k in names], capsize=4,
               label="derived cell trained by unnas.rank")
        ax.set(title="DARTS search signal", xlabel="loss that drove the search", ylabel="supervised accuracy (%)")
        ax.legend(fontsize=7)
        fig.suptitle("UnNAS: pretext accuracy against supervised accuracy per network; DARTS with and without labels",
                     fontsize=11)
        plots.save(fig, path)
