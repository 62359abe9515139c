"""Wall time of the zero-argument ``python -m unnas.rank`` against the previous default; one JSON line.

    python benchmarks/default_run.py [--repeats 1]

* ``default``: ``python -m unnas.rank`` as a new user types it (8 RandWire candidates on digits,
  rotation and the supervised reference, 4 epochs): every core (``run.executor=auto``) and the
  machine's precision (bfloat16 autocast on a CPU with bfloat16 arithmetic).
* ``previous``: the same population and recipe with the previous defaults: one job after another
  on one thread (``--executor local --threads-per-worker 1``), float32 (``train.amp=false``).

Only ``--runs-dir``, ``--name`` and ``--quiet`` are added (they change no result); both run in fresh
folders, alternating for ``--repeats`` rounds; medians and their ratio, and the CPU seconds of
each run (all its processes; on a machine shared with other work the wall time of the
multi-process default suffers most). The header line each run prints (layout and precision) is
reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDES = {"default": ([], {}),
         "previous": (["--executor", "local", "--threads-per-worker", "1", "train.amp=false"], {})}


def _children_cpu() -> float:
    """CPU seconds (user + system) of the finished child processes and theirs."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--sides", default="default,previous")
    a = p.parse_args(argv)
    env0 = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    times: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    headers: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for side in a.sides.split(","):
                extra, env = SIDES[side]
                cmd = [sys.executable, "-m", "unnas.rank", "--runs-dir", tmp, "--name", f"{side}-{r}", "--quiet",
                       *extra]
                c0, t0 = _children_cpu(), time.perf_counter()
                res = subprocess.run(cmd, cwd=ROOT, env={**env0, **env}, check=True, capture_output=True, text=True)
                times.setdefault(side, []).append(time.perf_counter() - t0)
                cpu.setdefault(side, []).append(_children_cpu() - c0)
                lines = res.stdout.splitlines()
                headers[side] = next((" ".join(ln.split()) for ln in lines if "[executor" in ln), "")
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"benchmark": "default_run", "median_seconds": {k: round(v, 1) for k, v in med.items()},
           "all_seconds": {k: [round(x, 1) for x in v] for k, v in times.items()},
           "cpu_seconds": {k: [round(x, 1) for x in v] for k, v in cpu.items()}, "headers": headers,
           "repeats": a.repeats, "loadavg_1m": round(os.getloadavg()[0], 2)}
    if "default" in med and "previous" in med:
        out["speedup"] = round(med["previous"] / med["default"], 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
