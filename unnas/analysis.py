"""From stored job rows to the ranking and everything the report shows.

Conventions: accuracies and label-free scores are fractions in [0, 1] in the store and in
:class:`Ranking`; the report shows percentages. Higher is better for every score. A candidate is
identified by its ``arch_id``; its score per objective is the mean over the seeds that finished.
The *error* of a population (for EDFs) is ``100 * (1 - accuracy)`` in percent.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Iterable

import numpy as np

from unnas.errors import UserError
from unnas.eval.correlation import agreement
from unnas.eval.edf import ks
from unnas.eval.random_experiment import random_experiment
from unnas.runner import SUPERVISED
from unnas.scores import BASELINES, REFERENCE, Column, Ranking, build_ranking, parse_ensemble  # noqa: F401
from unnas.store import JobRow, Store, summarize

SCORE_LABELS = {"knn": "kNN probe accuracy (uses labels)", "linear": "linear probe accuracy (uses labels)",
                "pretext": "label-free held-out score"}


def fmt_corr(block: dict) -> str:
    v, lo, hi = block["value"], block["ci_low"], block["ci_high"]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if lo is None or (isinstance(lo, float) and math.isnan(lo)):  # no bootstrap interval
        return f"{v:+.3f}"
    return f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def dumps(obj) -> str:
    """Strict JSON (NaN -> null): :func:`unnas.outputs.dumps`."""
    from unnas.outputs import dumps as strict

    return strict(obj)


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
    try:
        with Store(db) as store:
            rows = store.rows()
    except sqlite3.DatabaseError as e:
        raise UserError("RUN_DIR", str(db), "a results store written by unnas",
                        message=f"unreadable store ({e})") from None
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
    """One row per score column (objectives, ensembles, rungs, proxies, probes, the complexity
    baselines; ``supervised`` when a table is the reference), each with its agreement with the
    reference (``unnas.eval.correlation.agreement``).

    Row keys: ``name``, ``kind`` (the column's kind), ``uses_labels``, ``agreement`` and
    ``noise_ceiling`` (seed-to-seed Spearman of that column; NaN for baselines and single-seed runs).
    Empty when the run has no reference.
    """
    if not rk.reference:
        return []
    out = []
    ref = rk.column(REFERENCE)
    for name, col in rk.columns.items():
        if col.kind == "baseline" and name not in baselines:
            continue
        values = rk.column(name)
        if not np.isfinite(values).any():
            continue
        ag = rk.agreement.get(name) or agreement(values, ref, n_boot=n_boot, seed=seed)
        out.append({"name": name, "kind": col.kind, "uses_labels": col.uses_labels, "agreement": ag,
                    "noise_ceiling": rk.noise_ceiling.get(name, math.nan)})
    return out


def best_objective(comparison: list[dict]) -> str | None:
    """The label-free objective whose ranking agrees best with the reference: highest Spearman
    rho, ties broken by Kendall tau, then by name. Other columns never win; None when no objective
    has a defined rho."""
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
    """Is column ``a``'s Spearman rho with the reference higher than ``b``'s?

    Paired percentile bootstrap over the candidates that have both scores and a reference
    accuracy: each resample draws candidates with replacement and recomputes both rhos on the same
    draw (average ranks for ties); resamples where a vector is constant are skipped. Returns
    ``{"a", "b", "n", "value" (rho_a - rho_b), "ci_low", "ci_high", "n_boot_used", "separated"}``;
    ``separated`` is true when the interval excludes 0.
    """
    from scipy.stats import rankdata, spearmanr

    sa, sb, ref = rk.column(a), rk.column(b), rk.column(REFERENCE)
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
    gens = sorted(set(rk.generators.values()))
    if len(gens) < 2 or not rk.reference:
        return {}
    out: dict[str, dict[str, dict]] = {}
    for g in gens:
        ids = [a for a in rk.arch_ids if rk.generators.get(a) == g]
        ref = rk.column(REFERENCE, ids)
        out[g] = {o: agreement(rk.column(o, ids), ref, n_boot=n_boot, seed=seed) for o in rk.objectives}
    return out


def error_populations(rk: Ranking) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """Populations for the EDF plots, errors in percent with their candidates' complexity.

    ``{"generator": {gen: {"error", "params", "flops"}}, "objective": {name: {...}}}``: per generator
    the reference error of its candidates; per objective the label-free error ``100 (1 - score)``,
    plus ``supervised`` / ``reference``. Missing values are NaN; populations without any finite
    error are left out.
    """
    def pop(objective: str, ids: list[str]) -> dict[str, np.ndarray]:
        return {"error": 100.0 * (1.0 - rk.column(objective, ids)), "params": rk.column("params", ids),
                "flops": rk.column("flops", ids)}

    out: dict[str, dict] = {"generator": {}, "objective": {}}
    if rk.reference:
        for g in sorted(set(rk.generators.values())):
            p = pop(REFERENCE, [a for a in rk.arch_ids if rk.generators.get(a) == g])
            if np.isfinite(p["error"]).any():
                out["generator"][g] = p
    extra = [SUPERVISED] + ([REFERENCE] if rk.reference_name != SUPERVISED and rk.reference else [])
    for o in [*(c for c in rk.objectives if rk.columns[c].kind == "objective" and not _is_rung_order(rk, c)),
              *extra]:
        p = pop(o, rk.arch_ids)
        if np.isfinite(p["error"]).any():
            out["objective"][o] = p
    return out


def _is_rung_order(rk: Ranking, name: str) -> bool:
    """An objective column that orders successive-halving rungs (values above 1: not an accuracy)."""
    return any(c.kind == "rung" and c.source == name for c in rk.columns.values())


def ks_pairs(populations: dict[str, dict[str, np.ndarray]]) -> list[dict]:
    """Two-sample KS test (``unnas.eval.edf.ks``) between every pair of populations' errors."""
    out = []
    for a, b in combinations(sorted(populations), 2):
        ea, eb = populations[a]["error"], populations[b]["error"]
        if np.isfinite(ea).any() and np.isfinite(eb).any():
            out.append({"a": a, "b": b, **ks(ea, eb)})
    return out


def random_curves(rk: Ranking, n_draws: int = 1000, seed: int = 0) -> dict[str, dict]:
    """The UnNAS random experiment per label-free column (``unnas.eval.correlation.random_experiment``):
    objectives, ensembles and proxies.

    Every curve uses the same candidates: those with a reference accuracy and a value in every
    such column (a candidate that failed one job would otherwise make the curves start from
    different populations). ``{"reference": ..., column: ...}``: ``reference`` ranks by the
    reference accuracy itself (its ``oracle`` and ``random`` rules); each column's ``proxy`` rule
    picks by that column. Empty without a reference or no complete candidate.
    """
    if not rk.reference:
        return {}
    names = curve_columns(rk)
    ref = rk.column(REFERENCE)
    keep = np.isfinite(ref)
    for o in names:
        keep &= np.isfinite(rk.column(o))
    if not keep.any():
        return {}
    ids = [a for a, k in zip(rk.arch_ids, keep) if k]
    ref = rk.column(REFERENCE, ids)
    out = {"reference": random_experiment(ref, ref, n_draws=n_draws, seed=seed)}
    for o in names:
        out[o] = random_experiment(rk.column(o, ids), ref, n_draws=n_draws, seed=seed)
    return out


def curve_columns(rk: Ranking) -> list[str]:
    """Label-free columns that pick candidates in the random experiment (not rungs or baselines)."""
    return [c.name for c in rk.columns.values() if c.kind in ("objective", "ensemble", "proxy")]


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


def score_label_of(score: str | None) -> str:
    """What the ranking column ``eval.score`` is, in words."""
    from unnas.registry import TRAINED_SCORES

    if score in TRAINED_SCORES:
        return f"{score} of the trained network (label-free)"
    return SCORE_LABELS.get(score, "label-free score")


def analyze(runs: list[RunInfo], n_boot: int = 1000, n_draws: int = 1000, seed: int = 0) -> Analysis:
    """Merge the runs' rows and compute every table and curve of the report."""
    if not runs:
        raise UserError("RUN_DIR", None, "one or more run folders", message="no run folder given")
    rows = merge_rows(runs)
    scores = {(r.config.get("eval") or {}).get("score") for r in runs}
    warnings = []
    if len(runs) > 1:
        diff = config_differences(runs, ("data", "train", "eval", "reference", "proxy"))
        if diff:
            warnings.append("the runs differ in " + ", ".join(diff) + ": their numbers are not directly comparable")
    score_label = score_label_of(next(iter(scores))) if len(scores) == 1 else "label-free score"
    pretext = [o.strip() for r in runs for o in str((r.config.get("run") or {}).get("pretext", "")).split(",")]
    rk, notes = ranking_of(rows, runs[0].config, n_boot=n_boot, seed=seed, objective_order=[o for o in pretext if o])
    warnings += notes
    label_populations(rk, runs)
    if not rows:
        warnings.append("the store holds no jobs yet")
    elif not rk.reference:
        warnings.append("no reference (a finished supervised job or a reference table): agreement, scatter plots "
                        "and the random experiment need one")
    comparison = compare_objectives(rk, n_boot=n_boot, seed=seed)
    best = best_objective(comparison)
    diffs = [rho_difference(rk, best, o, n_boot=n_boot, seed=seed) for o in rk.objectives if best and o != best]
    pops = error_populations(rk)
    return Analysis(runs, rows, rk, comparison, best, diffs,
                    agreement_by_generator(rk, n_boot=n_boot, seed=seed), pops, ks_pairs(pops["generator"]),
                    random_curves(rk, n_draws=n_draws, seed=seed), summarize(rows), score_label, warnings)


def ranking_of(rows: list[JobRow], config: dict, *, strict: bool = False, n_boot: int = 1000, seed: int = 0,
               objective_order: Iterable[str] = ()) -> tuple[Ranking, list[str]]:
    """The :class:`Ranking` of ``rows`` as a run's saved ``config`` defines it: its reference table
    (``reference.path``), proxies, ensembles and primary column. A table that cannot be read, or
    candidates absent from it, raise :class:`UserError` when ``strict`` and are notes otherwise."""
    from unnas.registry import PROXIES

    run, ref_cfg = config.get("run") or {}, config.get("reference") or {}
    notes: list[str] = []
    reference, ref_name = None, ""
    if ref_cfg.get("path"):
        try:
            reference = reference_values(ref_cfg, _specs(rows))
            ref_name = Path(ref_cfg["path"]).name
        except UserError as e:
            if strict:
                raise
            notes.append(f"reference table not used: {e}")
    proxies = {r.objective: bool(PROXIES.meta(r.objective).get("log_scale", False))
               for r in rows if r.objective in PROXIES}
    rows = [log_scaled(r) if proxies.get(r.objective) else r for r in rows]
    listed = [p.strip() for key in ("pretext", "proxies") for p in str(run.get(key) or "").split(",") if p.strip()]
    objective_order = [*objective_order, *listed]  # columns in the order the command named them
    ensembles = [parse_ensemble(e) for e in run.get("ensembles") or []]
    rk = build_ranking(rows, reference=reference, reference_name=ref_name, proxies=proxies, ensembles=ensembles,
                       primary=(config.get("eval") or {}).get("score", "pretext"), objective_order=objective_order,
                       n_boot=n_boot, seed=seed)
    return rk, notes


def log_scaled(row: JobRow) -> JobRow:
    """A log-scaled proxy's row with ``score`` as ranked: its ``log10``
    (:func:`unnas.eval.proxies.base.scaled`), so seeds average geometrically and Pearson's r sees
    decades, not the largest network's raw value; ``-inf`` (ranked last) and missing stay as they are."""
    from unnas.eval.proxies.base import scaled

    v = (row.metrics or {}).get("score")
    if row.status != "done" or v is None or not math.isfinite(v):
        return row
    return dataclasses.replace(row, metrics={**row.metrics, "score": scaled(row.objective, v)})


def _specs(rows: Iterable[JobRow]):
    from unnas.spec import ArchSpec

    seen: dict[str, ArchSpec] = {}
    for r in rows:
        if r.arch_id not in seen:
            seen[r.arch_id] = ArchSpec.from_json(r.spec)
    return list(seen.values())


def reference_values(ref_cfg: dict, specs) -> dict[str, float]:
    """``arch_id -> accuracy`` from the table ``ref_cfg`` names (``path``, ``key_column``,
    ``value_column``), for every spec; a spec absent from the table is an error naming it."""
    from unnas.references import load_reference

    table = load_reference(ref_cfg["path"], ref_cfg.get("key_column", ""), ref_cfg.get("value_column", ""))
    by_gen: dict[str, list] = {}
    for spec in specs:
        by_gen.setdefault(spec.generator, []).append(spec)
    out: dict[str, float] = {}
    for gen, ss in by_gen.items():
        out.update(table.canonical(gen).lookup(ss))
    return out
