"""ResNeXt (Xie et al. 2017): at equal FLOPs, higher cardinality trains to lower error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import stats

from unnas.findings import FINDINGS, plots
from unnas.findings.base import NOT_AT_SCALE, PARTLY, REPRODUCED, Finding, Verdict, accuracies, mean_std, separated
from unnas.findings.data import data_args


def stage_params(width: int, groups: int) -> dict:
    return {"block": "bottleneck", "depths": [1, 1, 1], "widths": [width, 2 * width, 4 * width],
            "bottleneck": [1, 1, 1], "groups": [groups] * 3}


def flops(params: dict, in_channels: int, image_size: int) -> int:
    from unnas.generators.complexity import complexity
    from unnas.spec import ArchSpec

    return complexity(ArchSpec("anynet", params, 0), in_channels, image_size)["flops"]


def matched_width(groups: int, target: float, in_channels: int, image_size: int) -> int:
    """The stage-1 width (a multiple of ``groups``) whose network's FLOPs are closest to ``target``."""
    best, best_gap = groups, float("inf")
    for w in range(groups, 64 * groups + 1, groups):  # FLOPs grow with the width: stop once past the target
        f = flops(stage_params(w, groups), in_channels, image_size)
        if abs(f - target) < best_gap:
            best, best_gap = w, abs(f - target)
        if f > target:
            break
    return best


@FINDINGS.register("resnext")
class ResNeXt(Finding):
    title = "Cardinality at equal FLOPs: more groups, lower error"
    paper = "Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks (ResNeXt)"
    claim = "with FLOPs held fixed, raising the cardinality (groups of the 3x3 convolution) lowers the error"
    budgets = {
        "test": {"data": "tiny", "base": 8, "groups": [1, 4], "seeds": 1, "epochs": 1, "channels": 3, "size": 16},
        "quick": {"data": "digits", "base": 16, "groups": [1, 2, 4, 8], "seeds": 2, "epochs": 3, "channels": 1,
                  "size": 16},
        "full": {"data": "cifar10", "base": 16, "groups": [1, 2, 4, 8], "seeds": 3, "epochs": 5,
                 "channels": 3, "size": 32},
    }

    def run(self, ctx, b) -> dict:
        target = flops(stage_params(b["base"], 1), b["channels"], b["size"])
        sweep = []
        for g in b["groups"]:
            w = b["base"] if g == 1 else matched_width(g, target, b["channels"], b["size"])
            p = stage_params(w, g)
            rows = ctx.rank(f"resnext-g{g}", ["--generator", "anynet", "--params",
                                              *(f"{k}={v}".replace(" ", "") for k, v in p.items()),
                                              "--pretext", "supervised", "--num-archs", 1, "--seeds", b["seeds"],
                                              "--epochs", b["epochs"], "--seed", ctx.seed,
                                              *data_args(ctx, b["data"])])
            acc = accuracies(rows)
            sweep.append({"groups": g, "width": w, "flops": float(rows[0]["flops"]), "params": float(rows[0]["params"]),
                          **mean_std([1 - a for a in acc])})
        return {"target_flops": float(target), "sweep": sweep}

    def verdict(self, n) -> Verdict:
        s = n["sweep"]
        err = [c["mean"] for c in s]
        rho = float(stats.spearmanr([c["groups"] for c in s], err)[0]) if len(s) > 2 else float(np.sign(err[-1] - err[0]))
        spread = max(c["flops"] for c in s) / min(c["flops"] for c in s) - 1
        per = ", ".join(f"g={c['groups']}: {100 * c['mean']:.1f}%" for c in s)
        text = (f"error {per}; Spearman(groups, error) "
                f"{rho:+.2f}; FLOPs within {100 * spread:.0f}%")
        lowest, g1 = s[-1], s[0]
        if rho <= -0.8 and separated(g1, lowest):
            return Verdict(REPRODUCED, text + "; the highest cardinality beats g=1 by more than two standard errors")
        if lowest["mean"] < g1["mean"]:
            return Verdict(PARTLY, text + "; the highest cardinality has the lower error, not by a clear margin "
                                          "or not monotonically")
        return Verdict(NOT_AT_SCALE, text + "; the highest cardinality does not have the lower error")

    def figure(self, n, path: Path) -> None:
        s = n["sweep"]
        fig, ax = plots.new("ResNeXt: cardinality sweep at equal FLOPs", "cardinality (groups of the 3x3 convolution)",
                            "test error (%), mean ± std over training seeds")
        ax.errorbar([c["groups"] for c in s], [100 * c["mean"] for c in s], [100 * c["std"] for c in s], marker="o",
                    capsize=4, label="bottleneck network, stage widths matched to equal FLOPs")
        for c in s:
            ax.annotate(f"w={c['width']}\n{c['flops'] / 1e6:.2f} MFLOPs", (c["groups"], 100 * c["mean"]), fontsize=7,
                        textcoords="offset points", xytext=(4, 4))
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=8)
        plots.save(fig, path)
