"""DARTS on the NAS-Bench-Macro supernet driven by the rotation loss, beside the same search driven
by the labels (supervised loss), on real CIFAR-10 (``../shared/data``): what each search derives,
its published accuracy in NAS-Bench-Macro's CIFAR-10 table (``../shared/data/nas-bench-macro-cifar10.json``,
mean of three full trainings at width 1) and its percentile in the 6,561-network space, with the CPU
seconds of each search. A uniformly drawn network sits at the 50th percentile on average. Prints one
JSON line.

    python benchmarks/search_darts.py                      # rotation and supervised, two processes
    python benchmarks/search_darts.py --objectives rotation --epochs 2 --per-class 50   # a quick look

Settings are DARTS's (first order; architecture Adam 3e-4, betas 0.5/0.999, wd 1e-3; weights SGD
0.025 cosine, momentum 0.9, wd 3e-4, clip 5; batch 64; the two halves of the training images), on a
``--per-class`` subset of CIFAR-10's training split and the supernet at ``--width`` (0.25 by default).
Each search runs with one intra-op thread (deterministic); CPU seconds are the process's own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

TABLE = Path(os.environ.get("UNNAS_SHARED_DATA", ROOT.parent / "shared" / "data")) / "nas-bench-macro-cifar10.json"


def load_table(path: Path = TABLE) -> dict[str, float]:
    """``arch string -> published mean accuracy`` (JSON, checked: 6,561 entries of 8 digits)."""
    with open(path) as f:
        raw = json.load(f)
    table = {k: float(v["mean_acc"]) for k, v in raw.items()}
    if len(table) != 3 ** 8 or not all(len(k) == 8 and set(k) <= set("012") for k in table):
        raise ValueError(f"{path} is not NAS-Bench-Macro's table (6,561 networks named by 8 digits)")
    return table


def standing(table: dict[str, float], arch: str) -> dict[str, float]:
    """Published accuracy, percentile (share of the space with a lower accuracy, ties half) and rank."""
    acc = table[arch]
    lower = sum(v < acc for v in table.values())
    ties = sum(v == acc for v in table.values()) - 1
    return {"published_acc": acc, "percentile": 100.0 * (lower + 0.5 * ties) / (len(table) - 1),
            "rank": 1 + sum(v > acc for v in table.values())}


def search(objective: str, args: dict) -> dict:
    import torch
    from _cifar import cifar10_tree

    from unnas.data import load_dataset
    from unnas.search import run as search_run
    from unnas.search import run_supernet_search
    from unnas.strategies.base import SearchSpace

    torch.set_num_threads(1)
    tree = cifar10_tree()
    if tree is None:
        raise FileNotFoundError("CIFAR-10 archive not found beside the project (../shared/data)")
    sc = search_run.load(overrides=["search.method=darts", "data.name=imagefolder", f"data.root={tree}",
                                    f"data.subset_per_class={args['per_class']}", f"train.epochs={args['epochs']}",
                                    f"train.batch_size={args['batch_size']}", "train.threads=1"])
    data = load_dataset(sc.core.data)
    t0, c0 = time.perf_counter(), time.process_time()
    r = run_supernet_search("darts", SearchSpace("macro", {"width": args["width"]}), objective, data, sc.core,
                            options=sc.options, seed=args["seed"])
    return {"arch": r.spec.params["arch"], "cpu_seconds": r.cpu_seconds, "wall_seconds": time.perf_counter() - t0,
            "process_cpu_seconds": time.process_time() - c0, "steps": r.steps, "train_images": len(data.train),
            "per_epoch": [h["derived"]["arch"] for h in r.history],
            "final_loss": {"weights": r.history[-1]["weight_loss"], "architecture": r.history[-1]["arch_loss"]},
            "probabilities": r.probabilities["layers"]}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--objectives", default="rotation,supervised")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--per-class", type=int, default=1000, help="training images per class (both halves)")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2, help="searches run at the same time (one thread each)")
    a = p.parse_args(argv)
    table = load_table()
    settings = {"epochs": a.epochs, "per_class": a.per_class, "width": a.width, "batch_size": a.batch_size,
                "seed": a.seed}
    objectives = [o.strip() for o in a.objectives.split(",") if o.strip()]
    with ProcessPoolExecutor(max_workers=max(1, min(a.workers, len(objectives)))) as ex:
        runs = dict(zip(objectives, ex.map(search, objectives, [settings] * len(objectives))))
    for r in runs.values():
        r.update(standing(table, r["arch"]))
    accs = sorted(table.values())
    out = {"benchmark": "search_darts", "method": "darts (first order)", "space": "macro", "data": "cifar10",
           "settings": settings, "table": {"networks": len(accs), "best_acc": accs[-1], "median_acc": accs[len(accs) // 2],
                                           "worst_acc": accs[0]},
           "results": runs}
    if {"rotation", "supervised"} <= set(runs):
        out["rotation_minus_supervised"] = {k: runs["rotation"][k] - runs["supervised"][k]
                                            for k in ("published_acc", "percentile")}
    print(json.dumps(out, separators=(",", ":")))
    return out


if __name__ == "__main__":
    main()
