"""Ranking fidelity against a published table, per CPU-hour; prints one JSON line.

    python benchmarks/fidelity.py --master-seed 1 -- --config configs/fidelity.yaml --params width=1.0
    python benchmarks/fidelity.py --generator nb201 --reference nb201.csv --num-archs 100 \\
        --pretext none --proxies synflow,naswot,jacob_cov

Draws ``--num-archs`` networks uniformly from ``--generator`` (seeded by ``--master-seed``), runs
``python -m unnas.rank`` on them with the given options (any recipe: pretext training, proxies,
ensembles, successive halving; default data: CIFAR-10 from ``../shared/data``) and reports, for
every score column of the run (objectives, ensembles, rungs, proxies, probes, and the params /
FLOPs baselines in the same run), Spearman and Kendall with 95% bootstrap CIs against the table,
the reference accuracy of each column's top pick, the seconds per network spent on each column's
jobs, the total wall time and the CPU hours of the whole run (this process and its children).
Options after ``--`` (or unknown ones) go to ``unnas.rank`` unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
DEFAULT_TABLE = HERE.parents[1] / "shared" / "data" / "nas-bench-macro-cifar10.json"


def cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", default="macro")
    p.add_argument("--reference", default=str(DEFAULT_TABLE))
    p.add_argument("--num-archs", type=int, default=50)
    p.add_argument("--master-seed", type=int, default=0)
    p.add_argument("--data", default="cifar10-shared",
                   help="cifar10-shared (the ImageFolder tree of ../shared/data, extracted once) or any --data of "
                        "unnas.rank")
    p.add_argument("--runs-dir", default=str(Path(os.environ.get("UNNAS_BENCH_RUNS", "runs")) / "fidelity"))
    p.add_argument("--name", default="")
    a, rest = p.parse_known_args(argv)
    if rest and rest[0] == "--":
        rest = rest[1:]
    from _cifar import data_options

    data = data_options(a.data)
    if data is None:
        print(json.dumps({"error": "CIFAR-10 archive not found in ../shared/data"}))
        return 2
    digest = hashlib.sha1(json.dumps([a.generator, a.num_archs, a.data, rest]).encode()).hexdigest()[:6]
    name = a.name or f"{a.generator}-seed{a.master_seed}-{digest}"
    argv_rank = ["--generator", a.generator, "--reference", a.reference, "--num-archs", str(a.num_archs),
                 "--seed", str(a.master_seed), *data, "--runs-dir", a.runs_dir, "--name", name, "--quiet",
                 *rest]
    from unnas.rank import main as rank_main

    t0, c0 = time.time(), cpu_seconds()
    code = rank_main(argv_rank)
    wall, cpu = time.time() - t0, cpu_seconds() - c0
    if code != 0:
        print(json.dumps({"error": f"unnas.rank exited with {code}", "argv": argv_rank}))
        return code
    run = Path(a.runs_dir) / name
    ranking = json.loads((run / "ranking.json").read_text())
    from unnas.store import Store

    with Store(run / "store.sqlite") as st:
        rows = st.rows()
    seconds: dict[str, list[float]] = {}
    for r in rows:
        seconds.setdefault(r.objective, []).append(r.seconds or 0.0)
    n = len({r.arch_id for r in rows})
    def per_network(column: dict) -> float:
        """Seconds of the jobs behind a column per network (an ensemble: its parts'; baselines: none)."""
        if column["kind"] == "baseline":
            return 0.0
        if column["kind"] == "ensemble":
            return sum(per_network(ranking["columns"].get(part, {"kind": "baseline"}))
                       for part in column["source"].split("+"))
        return sum(seconds.get(column["source"], [])) / n if n else float("nan")

    cols = {}
    for name_, ag in ranking["agreement"].items():
        col = ranking["columns"][name_]
        src = col["source"]
        cols[name_] = {"kind": col["kind"], "uses_labels": col["uses_labels"], "n": ag["n"],
                       "spearman": ag["spearman"]["value"], "spearman_ci": [ag["spearman"]["ci_low"],
                                                                            ag["spearman"]["ci_high"]],
                       "kendall": ag["kendall"]["value"], "kendall_ci": [ag["kendall"]["ci_low"], ag["kendall"]["ci_high"]],
                       "top1_reference": ag.get("top1_reference"),
                       "top10pct_reference": ag.get("top10pct_reference"),  # 50 networks: the top-5 picks' mean
                       "seconds_per_network": per_network(col),
                       "median_job_seconds": statistics.median(seconds[src]) if seconds.get(src) else None}
    print(json.dumps({"benchmark": "fidelity", "generator": a.generator, "reference": Path(a.reference).name,
                      "master_seed": a.master_seed, "networks": n, "run": str(run), "argv": rest,
                      "wall_seconds": round(wall, 1), "cpu_hours": round(cpu / 3600, 3),
                      "best_reference": next(iter(ranking["agreement"].values()), {}).get("best_reference"),
                      "columns": cols}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
