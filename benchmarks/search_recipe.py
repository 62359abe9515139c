"""The top of a recipe's ranking: a label-free strategy search scored by a recipe (a proxy, an
objective or a rank ensemble), over several seeds, against a published table; prints one JSON line.

    python benchmarks/search_recipe.py --seeds 1,2,3,4,5 --samples 100 --score 'ensemble[logrank](...)' \\
        -- --config configs/fidelity.yaml --params width=1.0
    python benchmarks/search_recipe.py --generator nb201 --reference nb201.csv --seeds 1,2,3,4,5 \\
        --samples 100 --score ... -- --config configs/fidelity.yaml

Each seed is one ``python -m unnas.search --strategy STRATEGY`` run (``--samples`` candidates, the
given seed, one folder per seed under ``--out``; options after ``--`` go to it unchanged; default
data: CIFAR-10 from ``../shared/data``). The table (``--reference``) never scores a candidate: the
search records it beside each candidate, and it is read afterwards for the published accuracy of
the network each search returns and its percentile in the table (the share of the table's
networks with a lower accuracy, ties half). LaNAS runs with the settings chosen on
NAS-Bench-Macro's oracle (``LANAS`` below) unless the options after ``--`` override them. A seed
whose folder already holds a ``search.json`` is not run again; a killed seed resumes from its store.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]
DEFAULT_TABLE = HERE.parents[1] / "shared" / "data" / "nas-bench-macro-cifar10.json"
LANAS = ["lanas.height=5", "lanas.cp=0.02", "lanas.init_samples=10", "lanas.refit_every=5", "lanas.features=codes"]


def percentile(values: dict[str, float], structure: str) -> dict:
    """Published accuracy of ``structure``, its percentile among the table's ``values`` (as ``unnas
    search`` prints it) and its rank."""
    from types import SimpleNamespace

    from unnas.search_run import percentile as table_percentile

    acc = values[structure]
    return {"published_acc": acc, "percentile": table_percentile(SimpleNamespace(values=values), acc),
            "rank": 1 + sum(v > acc for v in values.values())}


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", default="macro")
    p.add_argument("--reference", default=str(DEFAULT_TABLE), help="the published table (CSV or JSON)")
    p.add_argument("--seeds", default="1,2,3,4,5")
    p.add_argument("--samples", type=int, default=100)
    p.add_argument("--strategy", default="lanas")
    p.add_argument("--score", required=True, help="the column that scores a candidate (search.score)")
    p.add_argument("--data", default="cifar10-shared")
    p.add_argument("--out", default=str(Path(os.environ.get("UNNAS_BENCH_RUNS", "runs")) / "search-recipe"))
    a, rest = p.parse_known_args(argv)
    rest = rest[1:] if rest[:1] == ["--"] else rest
    from _cifar import data_options

    data = data_options(a.data)
    if data is None:
        print(json.dumps({"error": "CIFAR-10 archive not found in ../shared/data"}))
        return 2
    from unnas.references import load_reference

    table = load_reference(a.reference).values
    seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    runs = []
    for seed in seeds:
        name = f"{a.strategy}-seed{seed}"
        folder = Path(a.out) / name
        argv_search = [sys.executable, "-m", "unnas.search", "--strategy", a.strategy, "--generator", a.generator,
                       "--seed", str(seed), *data, "--runs-dir", a.out, "--name", name, "--quiet",
                       "--reference", a.reference, "--score", a.score, "--num-archs", str(a.samples),
                       *(LANAS if a.strategy == "lanas" else []), *rest]
        t0, c0 = time.time(), children_cpu()
        if not (folder / "search.json").is_file():
            code = subprocess.call(argv_search, stdout=sys.stderr)
            if code != 0:
                print(json.dumps({"error": f"unnas.search exited with {code}", "seed": seed, "argv": argv_search[1:]}))
                return code
        res = json.loads((folder / "search.json").read_text())
        best = res["best"]
        runs.append({"seed": seed, "structure": best["structure"], **percentile(table, best["structure"]),
                     "evaluated": res["evaluated"], "cpu_seconds": res.get("cpu_seconds"),
                     "wall_seconds": res.get("wall_seconds"), "job_cpu_seconds": res.get("job_cpu_seconds"),
                     "measured_now": {"wall": round(time.time() - t0, 1), "cpu": round(children_cpu() - c0, 1)}})
    accs = [r["published_acc"] for r in runs]
    print(json.dumps({"benchmark": "search_recipe", "generator": a.generator, "reference": Path(a.reference).name,
                      "strategy": a.strategy, "score": a.score, "samples": a.samples, "argv": rest,
                      "table_best": max(table.values()), "table_median": statistics.median(table.values()),
                      "mean_published_acc": statistics.mean(accs), "median_published_acc": statistics.median(accs),
                      "mean_percentile": statistics.mean(r["percentile"] for r in runs),
                      "max_search_cpu_hours": max((r["cpu_seconds"] or 0) for r in runs) / 3600, "runs": runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
