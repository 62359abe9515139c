"""RandWire (Xie et al. 2019): at equal FLOPs, WS graphs >= ER > BA; accuracy over WS's (k, p)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unnas.findings import FINDINGS, plots
from unnas.findings.base import NOT_AT_SCALE, PARTLY, REPRODUCED, Finding, Verdict, accuracies, mean_std, separated
from unnas.findings.data import data_args

# the paper's best setting of each generator (its Fig. 3): WS(4, 0.75), ER(0.2), BA(5)
GENERATORS = {"WS": ("randwire-ws", ["k=4", "p=0.75"]), "ER": ("randwire-er", ["p=0.2"]),
              "BA": ("randwire-ba", ["m=5"])}


def run_name(gen: str, params: list[str]) -> str:
    """One run folder per generator and setting, so that a WS grid point equal to the paper's setting is
    the same run (resumed, not trained twice)."""
    return "-".join([gen, *(p.replace("=", "") for p in params)])


@FINDINGS.register("randwire")
class RandWire(Finding):
    title = "Random graph generators at equal FLOPs: WS >= ER > BA"
    paper = "Xie et al. 2019, Exploring Randomly Wired Neural Networks"
    claim = ("with the same node operations and FLOPs, Watts-Strogatz graphs train to at least the accuracy of "
             "Erdos-Renyi graphs, which beat Barabasi-Albert graphs; accuracy varies smoothly with WS's (k, p)")
    budgets = {
        "test": {"data": "tiny", "graphs": 2, "epochs": 1, "grid": [(4, 0.75)], "width": ["channels=8", "nodes=6"]},
        "quick": {"data": "digits", "graphs": 4, "epochs": 2, "grid": [(2, 0.25), (6, 0.25)],
                  "width": ["channels=8", "nodes=8"]},
        # 56 CIFAR-10 trainings in one CPU hour, about 60 CPU s each: at channels=16 and 8 epochs one
        # took about 270 s here, at channels=8 and 6 epochs about 105 CPU s (AMD EPYC, one thread)
        "full": {"data": "cifar10", "graphs": 8, "epochs": 3, "grid": [(2, 0.25), (2, 0.75), (6, 0.25), (6, 0.75)],
                 "width": ["channels=8", "nodes=16"]},
    }

    def _population(self, ctx, b, name, gen, params):
        rows = ctx.rank(name, ["--generator", gen, "--params", *b["width"], *params, "--pretext", "supervised",
                               "--num-archs", b["graphs"], "--epochs", b["epochs"], "--seed", ctx.seed,
                               *data_args(ctx, b["data"])])
        return {**mean_std(accuracies(rows)), "flops": float(np.mean([r["flops"] for r in rows]))}

    def run(self, ctx, b) -> dict:
        gens = {g: self._population(ctx, b, run_name(gen, p), gen, p) for g, (gen, p) in GENERATORS.items()}
        grid = []
        for k, p in b["grid"]:
            params = [f"k={k}", f"p={p}"]
            grid.append({"k": k, "p": p, **self._population(ctx, b, run_name("randwire-ws", params), "randwire-ws", params)})
        return {"generators": gens, "ws_grid": grid}

    def verdict(self, n) -> Verdict:
        g = n["generators"]
        ws_er = g["WS"]["mean"] >= g["ER"]["mean"]
        er_ba = g["ER"]["mean"] > g["BA"]["mean"]
        flops = [g[k]["flops"] for k in g]
        text = (f"mean accuracy WS {g['WS']['mean']:.3f}, ER {g['ER']['mean']:.3f}, BA {g['BA']['mean']:.3f} "
                f"(std over graphs {g['WS']['std']:.3f}/{g['ER']['std']:.3f}/{g['BA']['std']:.3f}); "
                f"FLOPs within {100 * (max(flops) / min(flops) - 1):.0f}%")
        if ws_er and er_ba:
            sep = separated(g["ER"], g["BA"])
            return Verdict(REPRODUCED if sep else PARTLY, text + ("" if sep else "; ER > BA by less than two standard "
                                                                              "errors"))
        if ws_er or er_ba:
            return Verdict(PARTLY, text + f"; {'WS >= ER' if ws_er else 'ER > BA'} holds, the other order does not")
        return Verdict(NOT_AT_SCALE, text + "; neither order holds")

    def figure(self, n, path: Path) -> None:
        fig, (a1, a2) = plots.plt.subplots(1, 2, figsize=(9, 4))
        plots.groups_bar(a1, n["generators"])
        a1.set_title("Generators at their paper settings", fontsize=10)
        a1.set_ylabel("test accuracy (%)\nmean ± std over graph seeds")
        a1.set_xlabel("generator: WS(4, 0.75), ER(0.2), BA(5)")
        for k in sorted({c["k"] for c in n["ws_grid"]}):
            cells = [c for c in n["ws_grid"] if c["k"] == k]
            a2.errorbar([c["p"] for c in cells], [100 * c["mean"] for c in cells], [100 * c["std"] for c in cells],
                        marker="o", capsize=3, label=f"WS k={k}")
        a2.set_title("WS(k, p)", fontsize=10)
        a2.set_xlabel("rewiring probability p")
        a2.set_ylabel("supervised test accuracy (%)")
        a2.legend()
        fig.suptitle("RandWire: accuracy of random graph generators at equal FLOPs", fontsize=11)
        plots.save(fig, path)
