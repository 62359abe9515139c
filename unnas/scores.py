"""From stored job rows to the score columns of a ranking, and the reference they are compared with.

Every number that can rank candidates is a *column* with a kind, and each kind says whether it
reads labels:

=============  =========================================================  ============
kind           column names                                              reads labels
=============  =========================================================  ============
objective      ``rotation``: the objective's label-free held-out score    no
probe          ``rotation/knn``, ``rotation/linear``                      yes
trained        ``rotation/rankme``, ``moco/sotl_e``, ...: scores of the        no
               trained network (``unnas.eval.trained``)
proxy          ``synflow``, ``naswot``, ...: zero-cost, no training       no
baseline       ``params``, ``flops``                                      no
ensemble       ``ensemble(rotation+flops)``: mean rank of parts;          no
               ``ensemble[logrank](...)``: another rule (eval/aggregate)
rung           ``rotation@3ep``: a successive-halving rung                no
supervised     ``supervised``: the supervised jobs (when a table is       yes
               the reference; otherwise they *are* the reference)
=============  =========================================================  ============

Conventions: higher is better for every column; a candidate's value is the mean over the seeds that
finished; accuracies are fractions. The *reference* is a published table (``reference.path``) when
one is given, else the supervised jobs' test accuracy.

Successive halving: an objective whose rows stopped at several epochs has one ``@<e>ep`` column per
rung (the candidates that reached it), and its own column orders every candidate by the deepest
rung it reached, then by its score there (value = rung index + score).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from unnas.eval.correlation import agreement
from unnas.eval.seeds import aggregate_seeds
from unnas.jobs import PROBE_METRICS
from unnas.runner import SUPERVISED
from unnas.store import JobRow

REFERENCE = "reference"
BASELINES = ("params", "flops")
LABEL_KINDS = ("probe", "supervised")  # column kinds that read labels


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # objective | probe | trained | proxy | baseline | ensemble | rung | supervised
    source: str = ""  # the objective / proxy it comes from
    log_scale: bool = False  # displays show log10 (a proxy spanning many decades)
    epochs: int = 0  # rung columns: the rung's epochs
    rule: str = ""  # ensemble columns: the rank aggregation rule (unnas.eval.aggregate)

    @property
    def uses_labels(self) -> bool:
        return self.kind in LABEL_KINDS

    def to_json(self) -> dict:
        return {"kind": self.kind, "uses_labels": self.uses_labels, "source": self.source,
                "log_scale": self.log_scale, **({"epochs": self.epochs} if self.epochs else {}),
                **({"rule": self.rule} if self.rule else {})}


def ensemble_name(parts: Iterable[str]) -> str:
    """The column name of an ensemble (its rule and parts, :mod:`unnas.eval.aggregate`)."""
    from unnas.eval.aggregate import as_ensemble

    return as_ensemble(parts).name


def parse_ensemble(text: str):
    """``"[RULE:]a,b"`` -> an :class:`unnas.eval.aggregate.Ensemble` (iterating it yields the parts)."""
    from unnas.eval.aggregate import parse

    return parse(text)


def rank_ensemble(columns: list[np.ndarray]) -> np.ndarray:
    """Mean of the parts' ranks over the candidates that have every part; NaN elsewhere (the
    ``mean`` rule of :mod:`unnas.eval.aggregate`)."""
    from unnas.eval.aggregate import Ensemble

    return Ensemble(tuple(str(i) for i in range(len(columns)))).combine(columns)


@dataclass
class Ranking:
    """One row per candidate: spec, complexity, every score column, the reference."""

    arch_ids: list[str]
    specs: dict[str, str]
    complexity: dict[str, dict]
    scores: dict[str, dict[str, float]]  # column -> arch -> value (baselines are in ``complexity``)
    columns: dict[str, Column]  # every column, display order (baselines included)
    supervised: dict[str, float]  # arch -> mean supervised test accuracy
    reference: dict[str, float] = field(default_factory=dict)  # arch -> accuracy compared with
    reference_name: str = SUPERVISED
    agreement: dict[str, dict] = field(default_factory=dict)  # column -> agreement with the reference
    noise_ceiling: dict[str, float] = field(default_factory=dict)
    failed: list[JobRow] = field(default_factory=list)
    generators: dict[str, str] = field(default_factory=dict)
    primary: str = ""  # the column the table is sorted by

    @property
    def objectives(self) -> list[str]:
        """The label-free objectives' own columns."""
        return [c.name for c in self.columns.values() if c.kind == "objective"]

    @property
    def generator_names(self) -> list[str]:
        return sorted(set(self.generators.values()))

    @property
    def percent(self) -> set[str]:
        """Columns holding accuracies (shown in percent): objectives, probes, rungs, supervised."""
        out = {c.name for c in self.columns.values() if c.kind in ("objective", "probe", "rung", "supervised")}
        return out - {c.source for c in self.columns.values() if c.kind == "rung"} | {REFERENCE, SUPERVISED}

    def names(self, *kinds: str) -> list[str]:
        return [c.name for c in self.columns.values() if not kinds or c.kind in kinds]

    @property
    def label_free(self) -> list[str]:
        return [c.name for c in self.columns.values() if not c.uses_labels]

    def column(self, name: str, arch_ids: Iterable[str] | None = None) -> np.ndarray:
        """Values of column ``name`` (or ``supervised``, ``reference``, a baseline) aligned with
        ``arch_ids`` (default: all candidates); NaN where missing."""
        ids = self.arch_ids if arch_ids is None else list(arch_ids)
        if name == SUPERVISED:
            src = self.supervised
        elif name == REFERENCE:
            src = self.reference
        elif name in BASELINES:
            src = {a: c.get(name) for a, c in self.complexity.items()}
        else:
            src = self.scores.get(name, {})
        return np.array([math.nan if src.get(a) is None else float(src[a]) for a in ids], dtype=float)

    def table(self) -> list[dict]:
        """Candidates sorted by the primary column (best first), every column's value."""
        rows = []
        for a in self.arch_ids:
            r = {"arch_id": a, **self.complexity.get(a, {})}
            for name in self.columns:
                if name not in BASELINES:
                    r[name] = self.scores.get(name, {}).get(a, math.nan)
            r[SUPERVISED] = self.supervised.get(a, math.nan)
            if self.reference_name != SUPERVISED:
                r[REFERENCE] = self.reference.get(a, math.nan)
            rows.append(r)
        key = self.primary or REFERENCE
        col = dict(zip(self.arch_ids, self.column(key)))
        rows.sort(key=lambda r: (-col[r["arch_id"]] if not math.isnan(col[r["arch_id"]]) else math.inf, r["arch_id"]))
        return rows

    def to_json(self) -> dict:
        return {"primary": self.primary, "reference": {"name": self.reference_name, "n": len(self.reference)},
                "columns": {n: c.to_json() for n, c in self.columns.items()},
                "table": self.table(), "agreement": self.agreement, "noise_ceiling": self.noise_ceiling,
                "failed": [{"job_id": r.job_id, "arch_id": r.arch_id, "objective": r.objective,
                            "seed": r.seed, "status": r.status, "error": r.error} for r in self.failed]}


def _mean_over_seeds(values: list[tuple[str, int, float]]) -> tuple[dict[str, float], float]:
    agg = aggregate_seeds([(a, s, v, v) for a, s, v in values])
    return {a: float(v) for a, v in zip(agg.arch_ids, agg.mean_score)}, float(agg.noise_ceiling)


def build_ranking(rows: Iterable[JobRow], *, reference: Mapping[str, float] | None = None,
                  reference_name: str = "", proxies: Mapping[str, bool] | None = None,
                  ensembles: Iterable[Iterable[str]] = (), primary: str = "pretext",
                  objective_order: Iterable[str] = (), n_boot: int = 1000, seed: int = 0) -> Ranking:
    """Aggregate job rows (any order, any mix of statuses) into a :class:`Ranking`.

    ``proxies``: proxy name -> log_scale, for the rows whose objective is a proxy. ``reference``:
    a published table's ``arch_id -> accuracy`` (default: the supervised jobs). ``primary``: which
    column sorts the table: ``pretext`` (the first objective's label-free score), ``knn`` /
    ``linear`` (its probe), or a column name; an ensemble, when given, comes first. ``ensembles``:
    each an :class:`unnas.eval.aggregate.Ensemble`, its text or its parts (mean rank).
    """
    from unnas.eval.aggregate import as_ensemble

    rows = list(rows)
    proxies = dict(proxies or {})
    order = {o: i for i, o in enumerate(dict.fromkeys(objective_order))}
    done = [r for r in rows if r.status == "done"]
    arch_ids = sorted({r.arch_id for r in rows})
    complexity: dict[str, dict] = {}
    for r in sorted(done, key=lambda r: (r.objective != SUPERVISED, r.objective, r.seed)):
        if r.metrics.get("params") is not None:
            complexity.setdefault(r.arch_id, {"params": r.metrics.get("params"), "flops": r.metrics.get("flops")})
    by_obj: dict[str, list[JobRow]] = {}
    for r in done:
        by_obj.setdefault(r.objective, []).append(r)
    names = sorted(by_obj, key=lambda o: (o == SUPERVISED, o in proxies, order.get(o, len(order)), o))
    columns: dict[str, Column] = {}
    scores: dict[str, dict[str, float]] = {}
    ceilings: dict[str, float] = {}

    def add(col: Column, values: list[tuple[str, int, float]]) -> None:
        scores[col.name], ceilings[col.name] = _mean_over_seeds(values)
        columns[col.name] = col

    supervised: dict[str, float] = {}
    trained: list[tuple[str, list[JobRow]]] = []  # their columns follow the objectives and proxies
    for o in names:
        rs = by_obj[o]
        if o == SUPERVISED:
            supervised, ceilings[SUPERVISED] = _mean_over_seeds([(r.arch_id, r.seed, r.metrics.get("objective_acc",
                                                                                                    math.nan)) for r in rs])
            continue
        if o in proxies:
            add(Column(o, "proxy", o, log_scale=proxies[o]), [(r.arch_id, r.seed, r.metrics.get("score", math.nan))
                                                              for r in rs])
            continue
        stops = sorted({int(r.metrics.get("epochs", 0) or 0) for r in rs})
        if len(stops) > 1:
            _add_rungs(o, rs, stops, add, scores, columns)
        else:
            add(Column(o, "objective", o), [(r.arch_id, r.seed, r.metrics.get("score", math.nan)) for r in rs])
        deepest = _deepest(rs)
        for probe, key in PROBE_METRICS.items():
            vals = [(r.arch_id, r.seed, r.metrics[key]) for r in deepest if key in r.metrics]
            if vals:
                add(Column(f"{o}/{probe}", "probe", o), vals)
        trained.append((o, deepest))
    for o, rs in trained:
        _add_trained(o, rs, add)
    for b in BASELINES:
        columns[b] = Column(b, "baseline", b)
    ref_name = reference_name or SUPERVISED
    if reference is None:
        ref = supervised
    else:
        ref = dict(reference)
        if supervised:
            columns[SUPERVISED] = Column(SUPERVISED, "supervised", SUPERVISED)
            scores[SUPERVISED] = supervised
    rk = Ranking(arch_ids, {r.arch_id: r.spec for r in rows}, complexity, scores, columns, supervised, ref, ref_name,
                 noise_ceiling=ceilings, failed=[r for r in rows if r.status != "done"],
                 generators={r.arch_id: r.generator for r in rows})
    ens_names = []
    for parts in ensembles:
        ens = as_ensemble(parts)
        rk.scores[ens.name] = dict(zip(rk.arch_ids, ens.combine([rk.column(p) for p in ens])))
        rk.columns = {ens.name: Column(ens.name, "ensemble", "+".join(ens), rule=ens.rule), **rk.columns}
        ens_names.append(ens.name)
    rk.primary = _primary(rk, primary, ens_names)
    if ref:
        refcol = rk.column(REFERENCE)
        for name in rk.columns:
            col = rk.column(name)
            if rk.columns[name].kind == "baseline":  # sizes span decades: Pearson's r in log10 (ranks unchanged)
                with np.errstate(divide="ignore", invalid="ignore"):
                    col = np.log10(np.where(col > 0, col, np.nan))
            if np.isfinite(col).any():
                rk.agreement[name] = {**agreement(col, refcol, n_boot=n_boot, seed=seed), **top_pick(col, refcol)}
    return rk


def trained_column(objective: str, score: str) -> str:
    """The column of a trained-network score of an objective: ``rotation/rankme``."""
    return f"{objective}/{score}"


def _add_trained(o: str, rows: list[JobRow], add) -> None:
    """One label-free column per trained-network score the rows hold (oriented: higher is better)."""
    from unnas.eval.trained import oriented
    from unnas.registry import TRAINED_SCORES

    for name in TRAINED_SCORES.names():
        vals = [(r.arch_id, r.seed, oriented(name, r.metrics[name])) for r in rows if name in r.metrics]
        if vals:
            add(Column(trained_column(o, name), "trained", o), vals)


def _deepest(rs: list[JobRow]) -> list[JobRow]:
    """Each (candidate, seed)'s row at the deepest rung it reached."""
    best: dict[tuple[str, int], JobRow] = {}
    for r in rs:
        k = (r.arch_id, r.seed)
        if k not in best or int(r.metrics.get("epochs", 0) or 0) > int(best[k].metrics.get("epochs", 0) or 0):
            best[k] = r
    return list(best.values())


def _add_rungs(o: str, rs: list[JobRow], stops: list[int], add, scores, columns) -> None:
    for e in stops:
        add(Column(f"{o}@{e}ep", "rung", o, epochs=e),
            [(r.arch_id, r.seed, r.metrics.get("score", math.nan)) for r in rs if int(r.metrics.get("epochs", 0)) == e])
    combined: dict[str, float] = {}
    for i, e in enumerate(stops):
        for a, v in scores[f"{o}@{e}ep"].items():
            if math.isfinite(v):
                combined[a] = i + v
    scores[o] = combined
    columns[o] = Column(o, "objective", o)
    # the objective's own column first, then its rungs
    for e in stops:
        columns[f"{o}@{e}ep"] = columns.pop(f"{o}@{e}ep")


def _primary(rk: Ranking, primary: str, ensembles: list[str]) -> str:
    if ensembles:
        return ensembles[0]
    objs = rk.objectives
    if primary == "default":  # a run folder written before its choice was stored
        from unnas.objectives.base import default_score

        primary = default_score(objs[0]) if objs else "pretext"
    for o in objs:  # a probe (knn, linear) or a trained-network score (rankme, ...) of the first objective
        if f"{o}/{primary}" in rk.columns:
            return f"{o}/{primary}"
    if primary in rk.columns:
        return primary
    if objs:
        return objs[0]
    proxies = rk.names("proxy")
    return proxies[0] if proxies else ""


def top_pick(score: np.ndarray, reference: np.ndarray) -> dict:
    """The reference accuracy of the candidate a column ranks first (``top1_reference``), the mean
    over its top 10% (``top10pct_reference``, at least one) and the best in the population."""
    ok = np.isfinite(score) & np.isfinite(reference)
    if not ok.any():
        return {"top1_reference": math.nan, "top10pct_reference": math.nan, "best_reference": math.nan}
    s, r = score[ok], reference[ok]
    order = np.lexsort((np.arange(s.size), -s))
    k = max(1, math.ceil(0.1 * s.size))
    return {"top1_reference": float(r[order[0]]), "top10pct_reference": float(r[order[:k]].mean()),
            "best_reference": float(r.max())}
