"""Label-free search on NAS-Bench-Macro under one CPU-time budget per search, beside random search and
the same search driven by labels: the published accuracy of the network each search finds and its
percentile in the 6,561-network space. Prints one JSON line.

    nice -n 10 python benchmarks/search_labelfree.py [--seed 1] [--budget 60] [--score swap] \\
        [--parts lanas,evolution,random,supervised,darts] [--workers 5] [--out runs/labelfree-s1]

Parts (each one process with one intra-op thread; the strategies run their jobs in that process):

* ``lanas``, ``evolution``: ``unnas.search_run.run_search`` driven by ``--score`` (default ``swap``,
  the zero-cost SWAP proxy: label-free, no training; the networks at width 1, the published ones,
  on CIFAR-10 training images). Their settings are the ones chosen on the table's oracle with other
  seeds and another objective (README, "Sample efficiency"): LaNAS height 5, cp 0.02, 10 initial
  samples, refit every 5, ``codes`` features; evolution P=10, S=5.
* ``random``: random search under the same score and budget.
* ``supervised``: the ``lanas`` search with the score ``supervised``: each candidate trained with
  labels for one epoch on 250 CIFAR-10 images per class (lr 0.1, batch 64) at width 0.5, scored by
  its accuracy on 1,000 test images.
* ``darts``: DARTS (first order, the paper's settings) with the rotation loss on the Macro supernet
  at ``--darts-width``, ``--darts-epochs`` epochs of ``--darts-per-class`` images per class: sized to
  the budget, not stopped by it (the defaults, 3 epochs of 100 per class at width 0.125, take about
  as many CPU seconds as the strategies' 60).

The strategy searches share the seed, so their first draws coincide (LaNAS's and evolution's random
warm-up, random search's first candidates): they differ in what they do after.

A strategy search stops once its jobs' CPU seconds reach ``--budget`` (``search.time_budget`` with
``search.clock=cpu``: the CPU time of single-thread jobs as the store records it); its reported
``cpu_seconds`` are the whole process's (data loading and the strategy included). The table
(``../shared/data/nas-bench-macro-cifar10.json``, ``mean_acc``) is read for reporting only:
``--reference`` never scores a candidate here. Percentile: the share of the space with a lower
published accuracy (ties count half). Each part's result is appended to ``<out>/parts.jsonl`` as it
ends; a rerun with the same ``--out`` skips parts already there and resumes a killed strategy search
from its store.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from search_darts import TABLE, load_table, standing  # noqa: E402

LANAS = ["lanas.height=5", "lanas.cp=0.02", "lanas.init_samples=10", "lanas.refit_every=5", "lanas.features=codes"]
EVOLUTION = ["evolution.population=10", "evolution.tournament=5"]
PROXY_DATA = ["model.params.width=1.0", "data.subset_per_class=10"]
SUPERVISED = ["run.supervised=true", "search.score=supervised", "model.params.width=0.5", "data.subset_per_class=250",
              "data.test_subset=1000", "train.epochs=1", "train.lr=0.1", "train.batch_size=64", "train.precise_bn=0",
              "eval.probes=''"]


def strategy_overrides(part: str, a: dict) -> list[str]:
    strategy = "random" if part == "random" else "evolution" if part == "evolution" else "lanas"
    common = [f"run.runs_dir={a['out']}", f"run.name={part}", "model.generator=macro", "run.device=cpu",
              "data.name=imagefolder", f"data.root={a['tree']}", "run.executor=local", "run.threads_per_worker=1",
              "train.threads=1", f"run.master_seed={a['seed']}", f"search.strategy={strategy}",
              f"search.time_budget={a['budget']}", "search.clock=cpu", f"{strategy}.samples=6561",
              f"reference.path={TABLE}"]
    if part == "supervised":
        return common + LANAS + ["run.pretext=none", *SUPERVISED]
    score = [f"run.proxies={a['score']}", f"search.score={a['score']}"] if a["score_is_proxy"] else \
        [f"run.pretext={a['score']}", f"search.score={a['score']}"]
    extra = LANAS if strategy == "lanas" else EVOLUTION if strategy == "evolution" else []
    return common + extra + (["run.pretext=none"] if a["score_is_proxy"] else []) + score + PROXY_DATA


def run_strategy(part: str, a: dict) -> dict:
    import torch

    from unnas import config
    from unnas.search_run import run_search

    torch.set_num_threads(1)
    cfg = config.load(None, strategy_overrides(part, a))
    c0, t0 = time.process_time(), time.perf_counter()
    assert run_search(cfg, quiet=True) == 0
    res = json.loads((Path(a["out"]) / part / "search.json").read_text())
    best = res["best"]
    seen = [t for t in res["trajectory"] if t.get("reference") is not None]
    return {"part": part, "strategy": cfg.search.strategy, "score": cfg.search.score, "arch": best["structure"],
            "samples": res["evaluated"], "job_cpu_seconds": res["job_cpu_seconds"],
            "cpu_seconds": time.process_time() - c0, "wall_seconds": time.perf_counter() - t0,
            "best_evaluated_arch": max(seen, key=lambda t: t["reference"])["arch_id"] if seen else None,
            "best_evaluated_acc": max(t["reference"] for t in seen) if seen else None}


def run_darts(part: str, a: dict) -> dict:
    import torch

    from unnas.data import load_dataset
    from unnas.search import run as search_run
    from unnas.search import run_supernet_search
    from unnas.strategies.base import SearchSpace

    torch.set_num_threads(1)
    c0, t0 = time.process_time(), time.perf_counter()
    sc = search_run.load(overrides=["search.method=darts", "data.name=imagefolder", f"data.root={a['tree']}",
                                    f"data.subset_per_class={a['darts_per_class']}", f"train.epochs={a['darts_epochs']}",
                                    "train.batch_size=64", "train.threads=1", "run.device=cpu"])
    data = load_dataset(sc.core.data)
    ckpt = Path(a["out"]) / part / "checkpoints"
    r = run_supernet_search("darts", SearchSpace("macro", {"width": a["darts_width"]}), "rotation", data, sc.core,
                            options=sc.options, seed=a["seed"], checkpoint_dir=ckpt)
    return {"part": part, "method": "darts (first order)", "objective": "rotation", "arch": r.spec.params["arch"],
            "samples": 0, "supernet_steps": r.steps, "train_images": len(data.train),
            "search_cpu_seconds": r.cpu_seconds, "cpu_seconds": time.process_time() - c0,
            "wall_seconds": time.perf_counter() - t0, "per_epoch": [h["derived"]["arch"] for h in r.history]}


def run_part(part: str, a: dict) -> dict:
    with contextlib.redirect_stdout(sys.stderr):  # stdout holds the one JSON line
        return (run_darts if part == "darts" else run_strategy)(part, a)


def cifar10_tree_or_none():
    from _cifar import cifar10_tree

    return cifar10_tree()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--budget", type=float, default=60.0, help="CPU seconds of job time per strategy search")
    p.add_argument("--score", default="swap", help="label-free score of the strategy searches (a proxy or objective)")
    p.add_argument("--parts", default="lanas,random,supervised,darts,evolution")
    p.add_argument("--workers", type=int, default=5, help="parts run at the same time (one thread each)")
    p.add_argument("--darts-width", type=float, default=0.125)
    p.add_argument("--darts-per-class", type=int, default=100)
    p.add_argument("--darts-epochs", type=int, default=3)
    p.add_argument("--out", default="")
    a = p.parse_args(argv)
    tree = cifar10_tree_or_none()
    if tree is None:
        raise SystemExit("error: CIFAR-10 archive not found beside the project (../shared/data)")
    from unnas.registry import PROXIES

    out = Path(a.out or f"runs/labelfree-s{a.seed}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    args = {"seed": a.seed, "budget": a.budget, "score": a.score, "score_is_proxy": a.score in PROXIES,
            "tree": str(tree), "out": str(out), "darts_width": a.darts_width, "darts_per_class": a.darts_per_class,
            "darts_epochs": a.darts_epochs}
    done_file = out / "parts.jsonl"
    done = {}
    if done_file.is_file():
        for line in done_file.read_text().splitlines():
            r = json.loads(line)
            done[r["part"]] = r
    parts = [x.strip() for x in a.parts.split(",") if x.strip() and x.strip() not in done]
    with ProcessPoolExecutor(max_workers=max(1, min(a.workers, len(parts) or 1))) as ex:
        futures = {ex.submit(run_part, part, args): part for part in parts}
        for f in as_completed(futures):
            r = f.result()
            done[r["part"]] = r
            with open(done_file, "a") as fh:
                fh.write(json.dumps(r) + "\n")
            print(f"{r['part']}: {r['arch']} after {r['cpu_seconds']:.0f} CPU s", file=sys.stderr, flush=True)
    table = load_table()
    results = {}
    for name, r in done.items():
        r = {**r, **standing(table, r["arch"])}
        if r.get("best_evaluated_acc") is not None:
            r["best_evaluated_acc"] = 100 * r["best_evaluated_acc"]  # search.json holds fractions
        results[name] = r
    accs = sorted(table.values())
    summary = {"benchmark": "search_labelfree", "space": "macro", "data": "cifar10", "seed": a.seed,
               "budget_cpu_seconds": a.budget, "score": a.score, "cores": os.cpu_count(),
               "table": {"networks": len(accs), "best_acc": accs[-1], "median_acc": accs[len(accs) // 2]},
               "results": results}
    if {"lanas", "random"} <= set(results):
        summary["lanas_minus_random_percentile"] = results["lanas"]["percentile"] - results["random"]["percentile"]
    if {"lanas", "supervised"} <= set(results):
        summary["lanas_minus_supervised_percentile"] = (results["lanas"]["percentile"]
                                                        - results["supervised"]["percentile"])
    print(json.dumps(summary, separators=(",", ":")))
    return summary


if __name__ == "__main__":
    main()
