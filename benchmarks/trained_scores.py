"""Agreement of every label-free column of a run (objectives, the trained-network scores, params,
FLOPs) with its reference table, from whatever jobs the run has finished; prints one JSON line.

    python benchmarks/fidelity.py --master-seed 0 --num-archs 20 -- --pretext rotation --params width=0.5 \\
        --epochs 1 data.subset_per_class=100 data.test_subset=1000 --executor local
    python benchmarks/trained_scores.py runs/fidelity/macro-seed0-43a039   # the run folder fidelity.py printed

Per column: Spearman rho with its 95% bootstrap CI, the table accuracy of the top-1 pick and the
mean over the top-5 picks, ``n`` (candidates with a value), and against each baseline named in
``--against`` (default ``flops,params``) the paired bootstrap of the difference of rho on the same
candidates (:func:`unnas.analysis.rho_difference`: ``value``, ``ci``, ``separated`` when the
interval excludes 0). The run's job CPU hours (the
``cpu_seconds`` its rows record) and the number of finished jobs come with them, so a run still in
progress gives the numbers of its finished part.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

import numpy as np


def top_k_mean(score: np.ndarray, reference: np.ndarray, k: int) -> float:
    """Mean reference accuracy of the ``k`` candidates ``score`` ranks first (ties: by position)."""
    ok = np.isfinite(score) & np.isfinite(reference)
    if not ok.any():
        return math.nan
    s, r = score[ok], reference[ok]
    order = np.lexsort((np.arange(s.size), -s))
    return float(r[order[:k]].mean())


def _num(v: float) -> float | None:
    return round(float(v), 4) if v is not None and math.isfinite(v) else None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--against", default="flops,params", help="baselines each column is compared with (paired)")
    a = p.parse_args(argv)
    from unnas.analysis import load_run, ranking_of, rho_difference
    from unnas.scores import REFERENCE

    run = load_run(a.run_dir)
    rk, _ = ranking_of(run.rows, run.config, n_boot=a.n_boot)
    ref = rk.column(REFERENCE)
    cols = {}
    for name, col in rk.columns.items():
        ag = rk.agreement.get(name)
        if col.uses_labels or not ag:
            continue
        v = rk.column(name)
        sp = ag["spearman"]
        cols[name] = {"kind": col.kind, "n": ag["n"], "spearman": _num(sp["value"]),
                      "ci": [_num(sp["ci_low"]), _num(sp["ci_high"])],
                      "top1": _num(top_k_mean(v, ref, 1)), "top5": _num(top_k_mean(v, ref, 5))}
        for base in [b for b in a.against.split(",") if b and b != name and b in rk.columns]:
            d = rho_difference(rk, name, base, n_boot=a.n_boot)
            cols[name][f"minus_{base}"] = {"value": _num(d["value"]), "ci": [_num(d["ci_low"]), _num(d["ci_high"])],
                                           "separated": d["separated"]}
    done = [r for r in run.rows if r.status == "done"]
    cpu = sum(float(r.metrics.get("cpu_seconds", 0.0)) for r in done)
    print(json.dumps({"run": str(a.run_dir), "jobs_done": len(done), "job_cpu_hours": round(cpu / 3600, 4),
                      "best_in_population": _num(float(np.nanmax(ref))) if np.isfinite(ref).any() else None,
                      "columns": cols}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
