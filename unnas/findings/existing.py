"""The two measurements the project already had, as findings: LaNAS's sample efficiency on
NAS-Bench-Macro (the published table as the oracle) and decoupled long-tail classifier
re-balancing (Kang et al. 2020)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unnas.errors import UserError
from unnas.findings import FINDINGS, plots
from unnas.findings.base import NOT_AT_SCALE, PARTLY, REPRODUCED, Finding, Verdict

DEFAULT_TABLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nas-bench-macro-cifar10.json"
TOP = 7  # the target: a network at least as good as the 7th best (top 0.1% of 6,561)
FACTOR = 2.0  # LaNAS must need at most half random search's median samples to count as reproduced
STAGE2 = ("ncm", "crt", "tau_norm", "lws")


def table_path(ctx) -> Path:
    path = Path(ctx.reference or DEFAULT_TABLE)
    if not path.is_file():
        raise UserError("--reference", str(path), "NAS-Bench-Macro's published CIFAR-10 table (JSON)",
                        message="the LaNAS finding needs the table as its oracle")
    return path


def samples_to_target(trajectory: list[dict], target: float, cap: int) -> int:
    """The number of evaluated candidates when the first one reaches ``target`` (``cap`` if none did)."""
    return next((t["n"] for t in trajectory if t["reference"] >= target), cap)


@FINDINGS.register("lanas-decoupling")
class Existing(Finding):
    title = "LaNAS sample efficiency, and decoupled long-tail re-balancing"
    paper = ("Wang et al. 2021, Sample-Efficient Neural Architecture Search by Learning Actions for Monte Carlo "
             "Tree Search (LaNAS); Kang et al. 2020, Decoupling Representation and Classifier for Long-Tailed "
             "Recognition")
    claim = ("LaNAS reaches a top-0.1% NAS-Bench-Macro network with several times fewer samples than random search; "
             "every stage-2 re-balancing method (NCM, cRT, tau-norm, LWS) beats the jointly trained classifier on "
             "few-shot and on overall accuracy")
    budgets = {
        "test": {"seeds": 1, "cap": 15, "lt": ["--data", "fake-lt", "--imbalance", "10", "data.subset_per_class=20",
                                               "--batch-size", "16", "--epochs", "1", "--crt-epochs", "1",
                                               "--lws-epochs", "1", "--shot-thresholds", "15,8"]},
        "quick": {"seeds": 3, "cap": 400, "lt": ["--data", "digits-lt", "--imbalance", "10", "--epochs", "8",
                                                 "--crt-epochs", "10", "--lws-epochs", "10", "--shot-thresholds", "auto"]},
        "full": {"seeds": 20, "cap": 3000, "lt": ["--data", "imagefolder-lt", "--imbalance", "100", "--epochs", "24",
                                                  "data.val_fraction=0.1", "--shot-thresholds", "auto"]},
    }

    def run(self, ctx, b) -> dict:
        table = json.loads(table_path(ctx).read_text())
        target = float(sorted((v["mean_acc"] for v in table.values()), reverse=True)[TOP - 1])
        target = target / 100 if target > 1 else target
        searches = {}
        for strategy in ("lanas", "random"):
            runs = []
            for s in range(ctx.seed, ctx.seed + b["seeds"]):
                argv = ["--strategy", strategy, "--generator", "macro", "--score", "reference", "--reference",
                        table_path(ctx), "--num-archs", b["cap"], "--seed", s]
                res = ctx.search(f"{strategy}-s{s}", argv)  # a finished search replays from its folder
                runs.append(samples_to_target(res["trajectory"], target, b["cap"]))
            searches[strategy] = {"samples": runs, "median": float(np.median(runs)),
                                  "capped": sum(r >= b["cap"] for r in runs)}
        lt = b["lt"] + (["--data-root", ctx.data_root or str(Path("~/.cache/unnas/cifar10-jpeg/cifar10").expanduser())]
                        if ctx.budget == "full" else [])
        run = ctx.longtail("longtail", [*lt, "--seed", ctx.seed])
        res = json.loads((run / "results.json").read_text())["results"]
        methods = next(iter(res.values()))["methods"]
        return {"target_acc": target, "cap": b["cap"], "search": searches,
                "longtail": {m: {k: methods[m].get(k) for k in ("many", "medium", "few", "all")} for m in methods}}

    def verdict(self, n) -> Verdict:
        s, lt = n["search"], n["longtail"]
        ratio = s["random"]["median"] / max(s["lanas"]["median"], 1)
        few = "few" if lt["joint"]["few"] is not None else "all"
        beats = [m for m in STAGE2 if lt[m]["all"] > lt["joint"]["all"] and lt[m][few] > lt["joint"][few]]
        text = (f"median samples to a top-{TOP} network: LaNAS {s['lanas']['median']:g}, random {s['random']['median']:g} "
                f"(x{ratio:.1f}; capped runs {s['lanas']['capped']} and {s['random']['capped']} at {n['cap']}); "
                f"stage-2 methods beating joint on {few}-shot and overall: {', '.join(beats) or 'none'}")
        lanas_ok = ratio >= FACTOR and s["lanas"]["capped"] < len(s["lanas"]["samples"])
        if lanas_ok and len(beats) == len(STAGE2):
            return Verdict(REPRODUCED, text)
        if lanas_ok or beats:
            return Verdict(PARTLY, text)
        return Verdict(NOT_AT_SCALE, text)

    def figure(self, n, path: Path) -> None:
        fig, (a1, a2) = plots.plt.subplots(1, 2, figsize=(10, 4))
        s = n["search"]
        a1.boxplot([s["lanas"]["samples"], s["random"]["samples"]])
        a1.set_xticks([1, 2], ["LaNAS", "random"])
        a1.set(title=f"Samples to a top-{TOP} NAS-Bench-Macro network", xlabel="search strategy (oracle: published table)",
               ylabel=f"networks evaluated (capped at {n['cap']})")
        lt = n["longtail"]
        names = list(lt)
        groups = [g for g in ("many", "medium", "few", "all") if all(lt[m][g] is not None for m in names)]
        for i, g in enumerate(groups):
            a2.bar(np.arange(len(names)) + i * 0.8 / len(groups), [100 * lt[m][g] for m in names], 0.8 / len(groups),
                   label=g)
        a2.set_xticks(np.arange(len(names)) + 0.4 - 0.4 / len(groups), names)
        a2.set(title="Long-tail: classifier re-balancing", xlabel="method", ylabel="test accuracy (%)")
        a2.legend(fontsize=7, title="classes", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        for a in (a1, a2):
            a.grid(alpha=0.3)
        fig.suptitle("LaNAS sample efficiency; decoupled long-tail recognition", fontsize=11)
        plots.save(fig, path)
