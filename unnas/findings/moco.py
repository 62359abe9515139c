"""MoCo (He et al. 2020): kNN and label-free scores over training; the effect of the queue size K
and of the momentum m (the paper's ablation trend)."""

from __future__ import annotations

from pathlib import Path

from scipy import stats

from unnas.findings import FINDINGS, plots
from unnas.findings.base import NOT_AT_SCALE, PARTLY, REPRODUCED, Finding, Verdict
from unnas.findings.data import data_args


@FINDINGS.register("moco")
class MoCo(Finding):
    title = "MoCo: a larger queue and a slow momentum encoder give better features"
    paper = "He et al. 2020, Momentum Contrast for Unsupervised Visual Representation Learning"
    claim = ("kNN accuracy of the frozen features grows with training and with the queue size K; a momentum "
             "encoder with m = 0.99 beats m = 0 (the key encoder copied from the query encoder)")
    budgets = {
        "test": {"data": "tiny", "rungs": [1, 2], "epochs": 1, "queues": [16, 32], "momenta": [0.0, 0.99],
                 "params": ["k=4", "p=0.5", "channels=8", "nodes=6"]},
        "quick": {"data": "digits", "rungs": [1, 2, 4], "epochs": 3, "queues": [64, 256, 1024],
                  "momenta": [0.0, 0.9, 0.99], "params": ["k=4", "p=0.75", "channels=16", "nodes=8"]},
        "full": {"data": "cifar10", "rungs": [1, 3, 9], "epochs": 6, "queues": [256, 1024, 4096],
                 "momenta": [0.0, 0.9, 0.99, 0.999], "params": ["k=4", "p=0.75", "channels=8", "nodes=16"]},
    }

    def _run(self, ctx, b, name, extra) -> list[dict]:
        return ctx.rank(name, ["--generator", "randwire-ws", "--params", *b["params"], "--pretext", "moco",
                               "--no-supervised", "--num-archs", 1, "--seed", ctx.seed,
                               *data_args(ctx, b["data"]), *extra], probes="knn")

    def _point(self, ctx, b, k, m) -> dict:
        r = self._run(ctx, b, f"moco-K{k}-m{m}", ["--epochs", b["epochs"], f"moco.queue_size={k}", f"moco.momentum={m}"])[0]
        return {"K": k, "m": m, "knn": r["knn_acc_uses_labels"], "moco_score": r["score"]}

    def run(self, ctx, b) -> dict:
        rungs = self._run(ctx, b, "moco-training", ["--budget", "sh", "--rungs", ",".join(map(str, b["rungs"])),
                                                    f"moco.queue_size={b['queues'][-1]}"])
        curve = sorted(({"epoch": int(r["epochs"]), "knn": r["knn_acc_uses_labels"], "moco_score": r["score"]}
                        for r in rungs), key=lambda r: r["epoch"])
        m_ref = max(b["momenta"])
        queue = [self._point(ctx, b, k, m_ref) for k in b["queues"]]
        momentum = [self._point(ctx, b, b["queues"][-1], m) for m in b["momenta"]]
        return {"training": curve, "queue": queue, "momentum": momentum}

    def verdict(self, n) -> Verdict:
        q, m, t = n["queue"], n["momentum"], n["training"]
        rho = float(stats.spearmanr([p["K"] for p in q], [p["knn"] for p in q])[0]) if len(q) > 2 else \
            (1.0 if q[-1]["knn"] > q[0]["knn"] else -1.0)
        checks = {"kNN grows over training": t[-1]["knn"] > t[0]["knn"],
                  "kNN grows with K": rho > 0 and q[-1]["knn"] > q[0]["knn"],
                  f"m={m[-1]['m']} beats m={m[0]['m']}": m[-1]["knn"] > m[0]["knn"]}
        def series(points, key):
            return ", ".join(f"{p[key]}: {100 * p['knn']:.1f}%" for p in points)

        text = f"kNN over training (epoch: acc) {series(t, 'epoch')}; over K {series(q, 'K')}; over m {series(m, 'm')}"
        held = [k for k, ok in checks.items() if ok]
        if len(held) == len(checks):
            return Verdict(REPRODUCED, text + "; single training seed")
        if held:
            return Verdict(PARTLY, text + f"; holds: {', '.join(held)}; fails: "
                                          f"{', '.join(k for k in checks if k not in held)}")
        return Verdict(NOT_AT_SCALE, text + "; no trend of the paper holds")

    def figure(self, n, path: Path) -> None:
        fig, axes = plots.plt.subplots(1, 3, figsize=(11, 3.8))
        t = n["training"]
        axes[0].plot([p["epoch"] for p in t], [100 * p["knn"] for p in t], "o-", label="kNN accuracy (reads labels)")
        axes[0].plot([p["epoch"] for p in t], [100 * p["moco_score"] for p in t], "s--",
                     label="view retrieval (label-free)")
        axes[0].set(title="Over training", xlabel="epoch", ylabel="accuracy (%)")
        axes[1].plot([p["K"] for p in n["queue"]], [100 * p["knn"] for p in n["queue"]], "o-", label="kNN accuracy")
        axes[1].set(title="Queue size K", xlabel="K (negatives in the queue)", ylabel="kNN accuracy (%)", xscale="log")
        axes[2].plot([str(p["m"]) for p in n["momentum"]], [100 * p["knn"] for p in n["momentum"]], "o-",
                     label="kNN accuracy")
        axes[2].set(title="Momentum m", xlabel="key-encoder momentum m", ylabel="kNN accuracy (%)")
        for a in axes:
            a.grid(alpha=0.3)
            a.legend(fontsize=7)
        fig.suptitle("MoCo: frozen-feature kNN accuracy over training, K and m", fontsize=11)
        plots.save(fig, path)
