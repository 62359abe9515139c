"""From stored job rows to the ranking: per-candidate table and agreement per objective."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from eval.correlation import agreement, aggregate_seeds
from unnas.runner import SUPERVISED
from unnas.store import JobRow


@dataclass
class Ranking:
    """One row per candidate: its spec, complexity, the label-free score per objective (mean over
    seeds) and the supervised accuracy; agreement statistics per label-free objective."""

    arch_ids: list[str]
    specs: dict[str, str]
    complexity: dict[str, dict]
    scores: dict[str, dict[str, float]]  # objective -> arch -> mean score
    supervised: dict[str, float]  # arch -> mean supervised test accuracy
    agreement: dict[str, dict] = field(default_factory=dict)  # objective -> agreement dict
    noise_ceiling: dict[str, float] = field(default_factory=dict)
    failed: list[JobRow] = field(default_factory=list)

    @property
    def objectives(self) -> list[str]:
        return [o for o in self.scores if o != SUPERVISED]

    def table(self) -> list[dict]:
        """Candidates sorted by the first objective's score (best first)."""
        rows = []
        for a in self.arch_ids:
            r = {"arch_id": a, **self.complexity.get(a, {})}
            for o in self.objectives:
                r[o] = self.scores[o].get(a, math.nan)
            r[SUPERVISED] = self.supervised.get(a, math.nan)
            rows.append(r)
        if self.objectives:
            key = self.objectives[0]
            rows.sort(key=lambda r: (-r[key] if not math.isnan(r[key]) else math.inf, r["arch_id"]))
        return rows

    def to_json(self) -> dict:
        return {"table": self.table(), "agreement": self.agreement, "noise_ceiling": self.noise_ceiling,
                "failed": [{"job_id": r.job_id, "arch_id": r.arch_id, "objective": r.objective,
                            "seed": r.seed, "status": r.status, "error": r.error} for r in self.failed]}


def build_ranking(rows: Iterable[JobRow], score_key: str = "score", n_boot: int = 1000, seed: int = 0) -> Ranking:
    rows = list(rows)
    done = [r for r in rows if r.status == "done"]
    arch_ids = sorted({r.arch_id for r in rows})
    specs = {r.arch_id: r.spec for r in rows}
    complexity = {}
    for r in done:
        complexity.setdefault(r.arch_id, {"params": r.metrics.get("params"), "flops": r.metrics.get("flops")})
    per_obj: dict[str, list[tuple]] = {}
    for r in done:
        key = "objective_acc" if r.objective == SUPERVISED else score_key
        per_obj.setdefault(r.objective, []).append((r.arch_id, r.seed, r.metrics.get(key, math.nan)))
    scores, ceilings = {}, {}
    for obj, items in per_obj.items():
        agg = aggregate_seeds([(a, s, v, v) for a, s, v in items])
        scores[obj] = {a: float(v) for a, v in zip(agg.arch_ids, agg.mean_score)}
        ceilings[obj] = float(agg.noise_ceiling)
    sup = scores.get(SUPERVISED, {})
    rk = Ranking(arch_ids, specs, complexity, {o: s for o, s in scores.items() if o != SUPERVISED}, sup,
                 noise_ceiling=ceilings, failed=[r for r in rows if r.status != "done"])
    if sup:
        for obj in rk.objectives:
            s = [rk.scores[obj].get(a, math.nan) for a in arch_ids]
            ref = [sup.get(a, math.nan) for a in arch_ids]
            rk.agreement[obj] = agreement(s, ref, n_boot=n_boot, seed=seed)
    return rk


def fmt_corr(block: dict) -> str:
    v, lo, hi = block["value"], block["ci_low"], block["ci_high"]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def dumps(obj) -> str:
    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        raise TypeError(type(o).__name__)

    return json.dumps(obj, indent=2, default=default, allow_nan=True)
