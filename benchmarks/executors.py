"""Wall-clock time of one population run per executor layout; prints one JSON line.

    python benchmarks/executors.py                      # 8 candidates, digits, rotation
    python benchmarks/executors.py --num-archs 8 --repeats 2 train.epochs=3

Every layout runs the same command (``python -m unnas.rank``, start-up and worker spawn
included) in a fresh run folder. Layouts with the same threads per job must give identical
stores (checked: ``identical``); the ratio ``local_1x1 / pool_Wx1`` is the speed-up of the
process pool over the default local executor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from unnas.runner import stored_results

ROOT = Path(__file__).resolve().parents[1]


def layouts(cores: int) -> list[tuple[str, str, int, int]]:
    """(label, executor, workers, threads per job)."""
    out = [("local_1x1", "local", 1, 1), (f"local_1x{cores}", "local", 1, cores),
           (f"pool_{cores}x1", "pool", cores, 1)]
    if cores > 1:
        out.append((f"pool_1x{cores}", "pool", 1, cores))
    if cores >= 4:
        out.append((f"pool_{cores // 2}x2", "pool", cores // 2, 2))
    return out



def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", help="extra dotted overrides")
    p.add_argument("--num-archs", type=int, default=8)
    p.add_argument("--data", default="digits")
    p.add_argument("--generator", default="resnet")
    p.add_argument("--pretext", default="rotation")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--layouts", default="", help="comma-separated labels to run (default: all), e.g. "
                                                  "local_1x1,pool_2x1")
    a = p.parse_args(argv)
    chosen = [x for x in layouts(a.cores) if not a.layouts or x[0] in a.layouts.split(",")]
    base = ["--data", a.data, "--generator", a.generator, "--pretext", a.pretext, "--num-archs", str(a.num_archs),
            "--no-supervised", "--quiet", "--device", "cpu", "train.epochs=2", "data.image_size=16", *a.overrides]
    times: dict[str, list[float]] = {}
    stores: dict[str, dict] = {}
    load = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for label, ex, workers, threads in chosen:
                name = f"{label}-{r}"
                cmd = [sys.executable, "-m", "unnas.rank", *base, "--runs-dir", tmp, "--name", name,
                       "--executor", ex, "--workers", str(workers), "--threads-per-worker", str(threads)]
                t0 = time.perf_counter()
                subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
                times.setdefault(label, []).append(time.perf_counter() - t0)
                stores[label] = stored_results(Path(tmp) / name / "store.sqlite")
                load.append(os.getloadavg()[0])
    med = {k: statistics.median(v) for k, v in times.items()}

    def ratio(a_: str, b_: str) -> float | None:
        return round(med[a_] / med[b_], 3) if a_ in med and b_ in med else None

    pool = f"pool_{a.cores}x1"
    by_threads: dict[int, list[str]] = {}
    for label, _, _, threads in chosen:
        by_threads.setdefault(threads, []).append(label)
    identical = all(stores[g[0]] == stores[x] for g in by_threads.values() for x in g)
    print(json.dumps({"benchmark": "executors", "candidates": a.num_archs, "data": a.data, "generator": a.generator,
                      "pretext": a.pretext, "cores": a.cores, "median_seconds": {k: round(v, 2) for k, v in med.items()},
                      "all_seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
                      "speedup_pool_vs_local": ratio("local_1x1", pool),
                      "speedup_pool_vs_local_all_threads": ratio(f"local_1x{a.cores}", pool),
                      "identical_at_equal_threads": identical, "load_avg_during": round(sum(load) / len(load), 2),
                      "repeats": a.repeats}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
