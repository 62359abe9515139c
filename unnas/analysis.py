"""From stored job rows to the ranking and everything the report shows.

Conventions: accuracies and label-free scores are fractions in [0, 1] in the store and in
:class:`Ranking`; the report shows percentages. Higher is better for every score. A candidate is
identified by its ``arch_id``; its score per objective is the mean over the seeds that finished.
The *error* of a population (for EDFs) is ``100 * (1 - accuracy)`` in percent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Iterable

import numpy as np

from eval.correlation import aggregate_seeds, agreement, random_experiment
from eval.edf import ks
from unnas.errors import UserError
from unnas.runner import SUPERVISED
from unnas.store import JobRow, Store, summarize

# Complexity measures used as training-free baselines ("does the parameter count alone rank
# the candidates?"); they are compared with the supervised accuracy like any objective.
BASELINES = ("params", "flops")
SCORE_LABELS = {"knn": "kNN accuracy", "pretext": "pretext accuracy"}


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
    generators: dict[str, str] = field(default_factory=dict)  # arch -> generator name

    @property
    def objectives(self) -> list[str]:
        return [o for o in self.scores if o != SUPERVISED]

    @property
    def generator_names(self) -> list[str]:
        return sorted(set(self.generators.values()))

    def column(self, objective: str, arch_ids: Iterable[str] | None = None) -> np.ndarray:
        """Scores of ``objective`` (or ``supervised``, ``params``, ``flops``) aligned with
        ``arch_ids`` (default: all candidates); NaN where missing."""
        ids = self.arch_ids if arch_ids is None else list(arch_ids)
        if objective == SUPERVISED:
            src = self.supervised
        elif objective in BASELINES:
            src = {a: c.get(objective) for a, c in self.complexity.items()}
        else:
            src = self.scores.get(objective, {})
        return np.array([math.nan if src.get(a) is None else float(src[a]) for a in ids], dtype=float)

    def table(self) -> list[dict]:
        """Candidates sorted by the first objective's score (best first)."""
        rows = []
        for a in self.arch_ids:
            r = {"arch_id": a, **self.complexity.get(a, {})}
            for o in self.objectives:
                r[o] = self.scores[o].get(a, math.nan)
            r[SUPERVISED] = self.supervised.get(a, math.nan)
            rows.append(r)
        key = self.objectives[0] if self.objectives else SUPERVISED
        rows.sort(key=lambda r: (-r[key] if not math.isnan(r[key]) else math.inf, r["arch_id"]))
        return rows

    def to_json(self) -> dict:
        return {"table": self.table(), "agreement": self.agreement, "noise_ceiling": self.noise_ceiling,
                "failed": [{"job_id": r.job_id, "arch_id": r.arch_id, "objective": r.objective,
                            "seed": r.seed, "status": r.status, "error": r.error} for r in self.failed]}


def build_ranking(rows: Iterable[JobRow], score_key: str = "score", n_boot: int = 1000, seed: int = 0,
                  objective_order: Iterable[str] = ()) -> Ranking:
    """Aggregate job rows (any order, any mix of statuses) into a :class:`Ranking`.

    The supervised jobs contribute their test accuracy (``objective_acc``), the label-free ones
    ``metrics[score_key]``. Complexity is taken from the supervised job when there is one (its
    backbone sees the data's own channels), else from the first finished job of the candidate.
    Objectives are listed in ``objective_order`` (e.g. the order of ``--pretext``), the others
    after them by name.
    """
    order = {o: i for i, o in enumerate(dict.fromkeys(objective_order))}
    rows = list(rows)
    done = [r for r in rows if r.status == "done"]
    arch_ids = sorted({r.arch_id for r in rows})
    specs = {r.arch_id: r.spec for r in rows}
    generators = {r.arch_id: r.generator for r in rows}
    complexity: dict[str, dict] = {}
    for r in sorted(done, key=lambda r: (r.objective != SUPERVISED, r.objective, r.seed)):
        complexity.setdefault(r.arch_id, {"params": r.metrics.get("params"), "flops": r.metrics.get("flops")})
    per_obj: dict[str, list[tuple]] = {}
    for r in done:
        key = "objective_acc" if r.objective == SUPERVISED else score_key
        per_obj.setdefault(r.objective, []).append((r.arch_id, r.seed, r.metrics.get(key, math.nan)))
    scores, ceilings = {}, {}
    for obj in sorted(per_obj, key=lambda o: (o == SUPERVISED, order.get(o, len(order)), o)):
        agg = aggregate_seeds([(a, s, v, v) for a, s, v in per_obj[obj]])
        scores[obj] = {a: float(v) for a, v in zip(agg.arch_ids, agg.mean_score)}
        ceilings[obj] = float(agg.noise_ceiling)
    sup = scores.get(SUPERVISED, {})
    rk = Ranking(arch_ids, specs, complexity, {o: s for o, s in scores.items() if o != SUPERVISED}, sup,
                 noise_ceiling=ceilings, failed=[r for r in rows if r.status != "done"], generators=generators)
    if sup:
        ref = rk.column(SUPERVISED)
        for obj in rk.objectives:
            rk.agreement[obj] = agreement(rk.column(obj), ref, n_boot=n_boot, seed=seed)
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
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(type(o).__name__)

    return json.dumps(obj, indent=2, default=default, allow_nan=True)


# ------------------------------------------------------------------ run folders
@dataclass
class RunInfo:
    """What a run folder holds: its configuration, its store rows and its JSON-lines log."""

    path: Path
    config: dict
    config_text: str
    rows: list[JobRow]
    events: list[dict]

    @property
    def name(self) -> str:
        return self.path.name


def load_run(path: str | Path) -> RunInfo:
    """Read a run folder (``store.sqlite`` required; ``config.yaml`` and ``log.jsonl`` optional).

    The store is opened through :class:`~unnas.store.Store`, which never modifies existing rows;
    a damaged log line is skipped rather than failing the whole report.
    """
    import yaml

    path = Path(path)
    db = path / "store.sqlite"
    if not db.is_file():
        raise UserError("RUN_DIR", str(path), "a run folder holding store.sqlite",
                        message="not a run folder (no store.sqlite)")
    with Store(db) as store:
        rows = store.rows()
    cfg_file = path / "config.yaml"
    text = cfg_file.read_text() if cfg_file.is_file() else ""
    try:
        cfg = (yaml.safe_load(text) or {}) if text else {}
    except yaml.YAMLError as e:
        raise UserError("RUN_DIR", str(cfg_file), "a readable config.yaml", message=f"bad YAML ({e})") from None
    events = []
    log = path / "log.jsonl"
    if log.is_file():
        for line in log.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict):
                events.append(rec)
    return RunInfo(path, cfg if isinstance(cfg, dict) else {}, text, rows, events)


def merge_rows(runs: Iterable[RunInfo]) -> list[JobRow]:
    """All rows of several runs; a job present in several runs (same ``job_id``) counts once,
    the later run's row winning."""
    out: dict[str, JobRow] = {}
    for run in runs:
        for r in run.rows:
            out[r.job_id] = r
    return list(out.values())


def config_differences(runs: list[RunInfo], sections: tuple[str, ...] = ("data", "train", "eval")) -> list[str]:
    """Dotted keys of ``sections`` whose values differ between runs (these make runs incomparable)."""
    diffs = set()
    for a, b in combinations(runs, 2):
        for s in sections:
            da, db = a.config.get(s) or {}, b.config.get(s) or {}
            for k in set(da) | set(db):
                if da.get(k) != db.get(k):
                    diffs.add(f"{s}.{k}")
    return sorted(diffs)


# ------------------------------------------------------------------ analyses on a Ranking
def compare_objectives(rk: Ranking, baselines: Iterable[str] = BASELINES, n_boot: int = 1000,
                       seed: int = 0) -> list[dict]:
    """One row per label-free objective, then one per complexity baseline, each with its agreement
    with the supervised accuracy (``eval.correlation.agreement``).

    Row keys: ``name``, ``kind`` (``objective`` | ``baseline``), ``agreement`` and ``noise_ceiling``
    (seed-to-seed Spearman of that objective; NaN for baselines and single-seed runs). Empty when
    the run has no supervised reference.
    """
    if not rk.supervised:
        return []
    out = []
    for o in rk.objectives:
        ag = rk.agreement.get(o) or agreement(rk.column(o), rk.column(SUPERVISED), n_boot=n_boot, seed=seed)
        out.append({"name": o, "kind": "objective", "agreement": ag,
                    "noise_ceiling": rk.noise_ceiling.get(o, math.nan)})
    ref = rk.column(SUPERVISED)
    for b in baselines:
        col = rk.column(b)
        if np.isfinite(col).any():
            out.append({"name": b, "kind": "baseline", "agreement": agreement(col, ref, n_boot=n_boot, seed=seed),
                        "noise_ceiling": math.nan})
    return out


def best_objective(comparison: list[dict]) -> str | None:
    """The label-free objective whose ranking agrees best with the supervised one: highest
    Spearman rho, ties broken by Kendall tau, then by name. Baselines never win; None when no
    objective has a defined rho."""
    cands = [r for r in comparison if r["kind"] == "objective"
             and not math.isnan(r["agreement"]["spearman"]["value"])]
    if not cands:
        return None
    cands.sort(key=lambda r: (-r["agreement"]["spearman"]["value"],
                              -_nan_to(r["agreement"]["kendall"]["value"], -math.inf), r["name"]))
    return cands[0]["name"]


def _nan_to(v: float, fill: float) -> float:
    return fill if v is None or math.isnan(v) else v


def rho_difference(rk: Ranking, a: str, b: str, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> dict:
    """Is objective ``a``'s Spearman rho with the supervised accuracy higher than ``b``'s?

    Paired percentile bootstrap over the candidates that have both scores and a supervised
    accuracy: each resample draws candidates with replacement and recomputes both rhos on the same
    draw (average ranks for ties); resamples where a vector is constant are skipped. Returns
    ``{"a", "b", "n", "value" (rho_a - rho_b), "ci_low", "ci_high", "n_boot_used", "separated"}``;
    ``separated`` is true when the interval excludes 0.
    """
    from scipy.stats import rankdata, spearmanr

    sa, sb, ref = rk.column(a), rk.column(b), rk.column(SUPERVISED)
    keep = np.isfinite(sa) & np.isfinite(sb) & np.isfinite(ref)
    sa, sb, ref = sa[keep], sb[keep], ref[keep]
    n = int(keep.sum())
    out = {"a": a, "b": b, "n": n, "value": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "n_boot_used": 0, "separated": False}
    if n < 3 or any(np.all(v == v[0]) for v in (sa, sb, ref)):
        return out
    out["value"] = float(spearmanr(sa, ref).statistic - spearmanr(sb, ref).statistic)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    xa, xb, xr = sa[idx], sb[idx], ref[idx]
    ok = ~np.any([np.all(x == x[:, :1], axis=1) for x in (xa, xb, xr)], axis=0)
    if not ok.any():
        return out
    ra, rb, rr = (rankdata(x[ok], axis=1) for x in (xa, xb, xr))

    def rowwise_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        xc, yc = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
        return np.einsum("ij,ij->i", xc, yc) / np.sqrt(np.einsum("ij,ij->i", xc, xc) * np.einsum("ij,ij->i", yc, yc))

    diff = rowwise_r(ra, rr) - rowwise_r(rb, rr)
    lo, hi = np.percentile(diff, [50 * (1 - ci), 50 * (1 + ci)])
    out.update(ci_low=float(lo), ci_high=float(hi), n_boot_used=int(diff.size), separated=bool(lo > 0 or hi < 0))
    return out


def agreement_by_generator(rk: Ranking, n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, dict]]:
    """``generator -> objective -> agreement`` computed inside each generator's candidates (only
    meaningful, and only computed, when the ranking mixes several generators)."""
    gens = rk.generator_names
    if len(gens) < 2 or not rk.supervised:
        return {}
    out: dict[str, dict[str, dict]] = {}
    for g in gens:
        ids = [a for a in rk.arch_ids if rk.generators.get(a) == g]
        ref = rk.column(SUPERVISED, ids)
        out[g] = {o: agreement(rk.column(o, ids), ref, n_boot=n_boot, seed=seed) for o in rk.objectives}
    return out


def error_populations(rk: Ranking) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Populations for the EDF plots, errors in percent with their candidates' complexity.

    ``{"generator": {gen: {"error", "params", "flops"}}, "objective": {name: {...}}}``: per generator
    the supervised error of its candidates; per objective the label-free error ``100 (1 - score)``,
    plus ``supervised``. Missing values are NaN; populations without any finite error are left out.
    """
    def pop(objective: str, ids: list[str]) -> dict[str, np.ndarray]:
        return {"error": 100.0 * (1.0 - rk.column(objective, ids)), "params": rk.column("params", ids),
                "flops": rk.column("flops", ids)}

    out: dict[str, dict] = {"generator": {}, "objective": {}}
    if rk.supervised:
        for g in rk.generator_names:
            p = pop(SUPERVISED, [a for a in rk.arch_ids if rk.generators.get(a) == g])
            if np.isfinite(p["error"]).any():
                out["generator"][g] = p
    for o in [*rk.objectives, SUPERVISED]:
        p = pop(o, rk.arch_ids)
        if np.isfinite(p["error"]).any():
            out["objective"][o] = p
    return out


def ks_pairs(populations: dict[str, dict[str, np.ndarray]]) -> list[dict]:
    """Two-sample KS test (``eval.edf.ks``) between every pair of populations' errors."""
    out = []
    for a, b in combinations(sorted(populations), 2):
        ea, eb = populations[a]["error"], populations[b]["error"]
        if np.isfinite(ea).any() and np.isfinite(eb).any():
            out.append({"a": a, "b": b, **ks(ea, eb)})
    return out


def random_curves(rk: Ranking, n_draws: int = 1000, seed: int = 0) -> dict[str, dict]:
    """The UnNAS random experiment per objective (``eval.correlation.random_experiment``).

    Every curve uses the same candidates: those with a supervised accuracy and a score for every
    label-free objective (a candidate that failed one job would otherwise make the curves start
    from different populations). ``{"reference": ..., objective: ...}``: ``reference`` ranks by the
    supervised accuracy itself (its ``oracle`` and ``random`` rules); each objective's ``proxy``
    rule picks by that objective's score. Empty without a supervised reference or no complete
    candidate.
    """
    if not rk.supervised:
        return {}
    ref = rk.column(SUPERVISED)
    keep = np.isfinite(ref)
    for o in rk.objectives:
        keep &= np.isfinite(rk.column(o))
    if not keep.any():
        return {}
    ids = [a for a, k in zip(rk.arch_ids, keep) if k]
    ref = rk.column(SUPERVISED, ids)
    out = {"reference": random_experiment(ref, ref, n_draws=n_draws, seed=seed)}
    for o in rk.objectives:
        out[o] = random_experiment(rk.column(o, ids), ref, n_draws=n_draws, seed=seed)
    return out


# ------------------------------------------------------------------ everything at once
@dataclass
class Analysis:
    """All numbers of a report over one or more run folders."""

    runs: list[RunInfo]
    rows: list[JobRow]
    ranking: Ranking
    comparison: list[dict]
    best: str | None
    differences: list[dict]  # rho_difference(best, other) for every other objective
    by_generator: dict[str, dict[str, dict]]
    populations: dict[str, dict[str, dict[str, np.ndarray]]]
    ks_generator: list[dict]
    curves: dict[str, dict]
    status: dict[str, int]
    score_label: str
    warnings: list[str]

    def to_json(self) -> dict:
        return {"runs": [str(r.path) for r in self.runs], "status": self.status, "score_label": self.score_label,
                "best_objective": self.best, "comparison": self.comparison, "rho_differences": self.differences,
                "by_generator": self.by_generator,
                "ks_generator": self.ks_generator, "random_experiment": self.curves, "warnings": self.warnings,
                **self.ranking.to_json()}


def label_populations(rk: Ranking, runs: list[RunInfo]) -> None:
    """Candidates of a generator that several runs sample (e.g. two regions of one design space) are
    labelled ``"generator (run folder)"``, so EDFs, KS tests and per-population agreement compare
    the runs' populations; a candidate in several of those runs takes the later run's label."""
    shared = {g for a, b in combinations([{r.generator for r in run.rows} for run in runs], 2) for g in a & b}
    for run in runs:
        for r in run.rows:
            if r.generator in shared:
                rk.generators[r.arch_id] = f"{r.generator} ({run.name})"


def analyze(runs: list[RunInfo], n_boot: int = 1000, n_draws: int = 1000, seed: int = 0) -> Analysis:
    """Merge the runs' rows and compute every table and curve of the report."""
    if not runs:
        raise UserError("RUN_DIR", None, "one or more run folders", message="no run folder given")
    rows = merge_rows(runs)
    scores = {(r.config.get("eval") or {}).get("score") for r in runs}
    warnings = []
    if len(runs) > 1:
        diff = config_differences(runs)
        if diff:
            warnings.append("the runs differ in " + ", ".join(diff) + ": their numbers are not directly comparable")
    score_label = SCORE_LABELS.get(next(iter(scores)), "label-free score") if len(scores) == 1 else "label-free score"
    pretext = [o.strip() for r in runs for o in str((r.config.get("run") or {}).get("pretext", "")).split(",")]
    rk = build_ranking(rows, n_boot=n_boot, seed=seed, objective_order=[o for o in pretext if o])
    label_populations(rk, runs)
    if not rows:
        warnings.append("the store holds no jobs yet")
    elif not rk.supervised:
        warnings.append("no finished supervised job: agreement, scatter plots and the random experiment "
                        "need the supervised reference")
    comparison = compare_objectives(rk, n_boot=n_boot, seed=seed)
    best = best_objective(comparison)
    diffs = [rho_difference(rk, best, o, n_boot=n_boot, seed=seed) for o in rk.objectives if best and o != best]
    pops = error_populations(rk)
    return Analysis(runs, rows, rk, comparison, best, diffs,
                    agreement_by_generator(rk, n_boot=n_boot, seed=seed), pops, ks_pairs(pops["generator"]),
                    random_curves(rk, n_draws=n_draws, seed=seed), summarize(rows), score_label, warnings)
