"""Does bfloat16 change the ranking? Spearman of float32 vs bfloat16 scores next to the
seed-to-seed Spearman of float32 alone, on the same population; prints one JSON line.

    python benchmarks/precision_ranking.py [--pretext rotation] [--num-archs 12] [KEY=VALUE ...]

Two runs of ``python -m unnas.rank`` (no supervised reference) on the same population: float32
with training seeds 0 and 1, bfloat16 with seed 0. For each score, the label-free one (the
objective's own held-out score, ``eval.score=pretext``) and the kNN probe (which reads labels),
the Spearman rank correlation of

* ``fp32_seed0_vs_bf16_seed0``: the same training seed in the two precisions;
* ``fp32_seed1_vs_bf16_seed0``: another seed and the other precision;
* ``fp32_seed0_vs_fp32_seed1``: the seed-to-seed agreement of float32 alone, the noise floor.

bfloat16 leaves the ranking as it is when its agreement with float32 is at least the float32
seed-to-seed agreement. Also the wall time of each run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scipy.stats import spearmanr

ROOT = Path(__file__).resolve().parents[1]
SCORES = ("score", "knn")  # the label-free score (eval.score=pretext) and the kNN probe (reads labels)
KNN_KEYS = ("knn_acc", "knn_acc_uses_labels")


def scores(store: Path) -> dict[tuple[str, str, int], dict]:
    from unnas.store import Store

    with Store(store) as s:
        rows = {(r.objective, r.arch_id, r.seed): dict(r.metrics) for r in s.rows() if r.status == "done"}
    for m in rows.values():
        m["knn"] = next((m[k] for k in KNN_KEYS if k in m), float("nan"))
    return rows


def rho(a: dict, b: dict, metric: str) -> float | None:
    keys = sorted(set(a) & set(b))
    if len(keys) < 3:
        return None
    return round(float(spearmanr([a[k][metric] for k in keys], [b[k][metric] for k in keys]).statistic), 3)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", help="extra dotted overrides for both runs")
    p.add_argument("--pretext", default="rotation")
    p.add_argument("--num-archs", type=int, default=12)
    p.add_argument("--generator", default="randwire-ws")
    p.add_argument("--data", default="digits")
    p.add_argument("--runs-dir", default="", help="keep the runs here (default: a temporary folder)")
    a = p.parse_args(argv)
    base = [sys.executable, "-m", "unnas.rank", "--pretext", a.pretext, "--num-archs", str(a.num_archs),
            "--generator", a.generator, "--data", a.data, "--no-supervised", "--quiet", "--device", "cpu",
            "eval.score=pretext", *a.overrides]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(a.runs_dir or tmp)
        seconds = {}
        for name, extra in (("float32", ["--seeds", "2", "train.precision=float32"]),
                            ("bfloat16", ["--seeds", "1", "train.precision=bfloat16"])):
            t0 = time.perf_counter()
            subprocess.run([*base, "--runs-dir", str(runs), "--name", name, *extra], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL)
            seconds[name] = round(time.perf_counter() - t0, 1)
        f32, b16 = scores(runs / "float32" / "store.sqlite"), scores(runs / "bfloat16" / "store.sqlite")
    out = {}
    for obj in a.pretext.split(","):
        def pick(rows: dict, seed: int) -> dict:
            return {k[1]: v for k, v in rows.items() if k[0] == obj and k[2] == seed}

        s0, s1, b0 = pick(f32, 0), pick(f32, 1), pick(b16, 0)
        out[obj] = {m: {"fp32_seed0_vs_bf16_seed0": rho(s0, b0, m), "fp32_seed1_vs_bf16_seed0": rho(s1, b0, m),
                        "fp32_seed0_vs_fp32_seed1": rho(s0, s1, m)} for m in SCORES}
        for m in SCORES:
            r = out[obj][m]
            same = [v for v in (r["fp32_seed0_vs_bf16_seed0"], r["fp32_seed1_vs_bf16_seed0"]) if v is not None]
            r["bf16_within_seed_noise"] = (bool(min(same) >= r["fp32_seed0_vs_fp32_seed1"])
                                           if same and r["fp32_seed0_vs_fp32_seed1"] is not None else None)
        out[obj]["candidates"] = len(b0)
    print(json.dumps({"benchmark": "precision_ranking", "generator": a.generator, "data": a.data,
                      "num_archs": a.num_archs, "overrides": a.overrides, "spearman": out, "run_seconds": seconds,
                      "loadavg_1m": round(os.getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
