"""Evaluate a strategy's round by running its jobs: the ``evaluate`` that
:func:`unnas.strategies.loop.drive` calls in a ranking or search run.

A round's proposals become jobs (:func:`unnas.runner.plan_jobs`): every label-free objective of the
run for every proposal and seed, trained up to the proposal's rung (successive halving) or for the
whole schedule; and, the first time a candidate is proposed, the jobs every candidate gets once:
the supervised reference (full schedule) and the zero-cost proxies. Jobs that already have a row
are not run again (``failed`` / ``diverged`` / ``timeout`` ones only with ``retry``), so a rerun
replays the store and continues where a killed run stopped. Each committed row is final: its
checkpoints are discarded, except those of a rung whose candidate may continue.

A proposal's observation is its score in the ranking (:mod:`unnas.scores`) of every candidate
evaluated so far at the proposal's rung: the column ``select`` (default: the first label-free
objective the command named, else the first proxy; an ensemble name works too, its ranks taken among
those candidates), mean over seeds; its metrics hold the wall seconds its jobs took (``seconds``) and
their CPU seconds (``cpu_seconds``).

**One scale.** A rank among the candidates seen so far changes as candidates are added, so after
every round :meth:`RoundRunner.rescore` gives every earlier observation its value in the current
ranking (:func:`unnas.strategies.loop.drive` calls it): a strategy always compares candidates on the
scale of the latest ranking. Values that are not ranks (an objective's score, a proxy) never change.
Successive halving compares only the candidates of one rung, which one round evaluates together.

**Proxy-first successive halving.** A first rung of 0 epochs trains nothing: its candidates run
only their once-per-candidate jobs (the proxies) and are ranked by the training-free parts of
``select`` (the proxies and baselines of an ensemble, their rank mean when several), else by the
first proxy. Later rungs train the survivors and rank them by ``select``.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import dataclass, field
from typing import Callable, Sequence

from unnas import config as config_mod
from unnas.config import Config
from unnas.runner import Job, checkpoint_dir, objectives_of, plan_jobs, pretexts_of, proxies_of
from unnas.scores import BASELINES, ensemble_name, parse_ensemble, rank_ensemble
from unnas.store import JobRow, Store
from unnas.strategies.base import Observation, Proposal


def rank_rows(cfg: Config) -> Callable[[list[JobRow]], object]:
    """``rows -> Ranking`` as the run's config defines it (its proxies and ensembles, its objectives
    in the order the command named them), without the reference table or bootstrap intervals."""
    from unnas.analysis import ranking_of

    saved = {**config_mod.to_dict(cfg), "reference": {}}
    order = objectives_of(cfg)
    return lambda rows: ranking_of(rows, saved, n_boot=0, objective_order=order)[0]


@dataclass
class RoundRunner:
    cfg: Config
    store: Store
    run: Callable[[list[Job]], None]  # executes jobs, committing one row each (see unnas.ranking)
    rank: Callable[[list[JobRow]], object] | None = None  # rows -> a Ranking (default: rank_rows(cfg))
    select: str = ""  # the column that scores a proposal ("" = the first objective)
    rungs: Sequence[int] = ()  # successive halving: epochs per rung; () = one full-budget round
    retry: bool = False
    on_round: Callable[[int, list[Job], list[Job]], None] | None = None
    jobs: list[Job] = field(default_factory=list)  # every job planned so far, in order
    rounds: int = 0
    seen: set = field(default_factory=set)  # arch_ids that have had their once-per-candidate jobs
    latest: dict = field(default_factory=dict)  # arch_id -> score in the last round's ranking

    def __post_init__(self) -> None:
        if self.rank is None:
            self.rank = rank_rows(self.cfg)

    def stop(self, rung: int) -> int:
        return int(self.rungs[rung]) if self.rungs else 0

    def trains(self, rung: int) -> bool:
        """Whether ``rung`` trains (a first rung of 0 epochs is the proxies' alone)."""
        return not self.rungs or int(self.rungs[rung]) > 0

    def parts(self, rung: int) -> list[str]:
        """The columns that score a proposal at ``rung``: one column, or an ensemble's parts."""
        pretexts, proxies = pretexts_of(self.cfg), proxies_of(self.cfg)
        if self.trains(rung):
            return [self.select or (pretexts or proxies or [""])[0]]
        free = [*proxies, *BASELINES]
        chosen = [self.select]
        for text in self.cfg.run.ensembles:
            if ensemble_name(parse_ensemble(text)) == self.select:
                chosen = parse_ensemble(text)
        return [p for p in chosen if p in free] or proxies[:1]

    def values(self, rk, rung: int) -> dict[str, float]:
        """``arch_id -> score`` at ``rung`` in the ranking ``rk``."""
        parts = [p or rk.primary for p in self.parts(rung)]
        if not parts[0]:
            return {}
        col = rk.column(parts[0]) if len(parts) == 1 else rank_ensemble([rk.column(p) for p in parts])
        return dict(zip(rk.arch_ids, col))

    def keeps_checkpoints(self, job: Job) -> bool:
        """A rung below the last: its candidate may continue from the checkpoint."""
        return bool(self.rungs) and 0 < job.stop < int(self.rungs[-1])

    def plan(self, proposals: list[Proposal]) -> list[Job]:
        pretexts = pretexts_of(self.cfg)
        jobs: list[Job] = []
        by_rung: dict[int, list] = {}
        for p in proposals:
            by_rung.setdefault(p.rung, []).append(p.spec)
        for rung, specs in by_rung.items():
            if self.trains(rung):
                jobs += plan_jobs(self.cfg, specs, objectives=pretexts, stop=self.stop(rung), proxies=False)
        new = list({p.spec.arch_id: p.spec for p in proposals if p.spec.arch_id not in self.seen}.values())
        if new:  # once per candidate: the supervised reference and the proxies
            jobs += [j for j in plan_jobs(self.cfg, new, proxies=True) if j.objective not in pretexts]
            self.seen.update(s.arch_id for s in new)
        position = {}
        for p in proposals:
            position.setdefault(p.spec.arch_id, len(position))
        return sorted(jobs, key=lambda j: position[j.spec.arch_id])  # candidate by candidate (stable)

    def __call__(self, proposals: list[Proposal]) -> list[Observation]:
        jobs = self.plan(proposals)
        self.jobs += jobs
        statuses = self.store.statuses()
        rerun = {"failed", "diverged", "timeout"} if self.retry else set()
        todo = [j for j in jobs if j.job_id not in statuses or statuses[j.job_id] in rerun]
        if self.on_round is not None:
            self.on_round(self.rounds, jobs, todo)
        for j in jobs:  # a crash between a commit and the cleanup can leave checkpoints of finished jobs
            if statuses.get(j.job_id) == "done" and not self.keeps_checkpoints(j):
                shutil.rmtree(checkpoint_dir(self.store.path.parent, j.lineage_id), ignore_errors=True)
        if todo:
            self.run(todo)
        self.rounds += 1
        return self.observe(proposals, jobs)

    def observe(self, proposals: list[Proposal], jobs: list[Job]) -> list[Observation]:
        pretexts = pretexts_of(self.cfg)
        stops = {j.stop for j in jobs if j.objective in pretexts}
        ids = {j.job_id for j in self.jobs if j.objective not in pretexts or j.stop in stops}
        rows = [r for r in self.store.rows() if r.job_id in ids]
        rk = self.rank(rows)
        values = {rung: self.values(rk, rung) for rung in {p.rung for p in proposals}}
        self.latest = values[proposals[0].rung] if proposals else {}
        this = {j.job_id for j in jobs}
        seconds: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for r in rows:
            if r.job_id in this:
                seconds[r.arch_id] = seconds.get(r.arch_id, 0.0) + (r.seconds or 0.0)
                # a job that did not finish records no CPU time: its wall seconds bound it
                cpu[r.arch_id] = cpu.get(r.arch_id, 0.0) + float(r.metrics.get("cpu_seconds", r.seconds or 0.0))
        out = []
        for p in proposals:  # no score (its job failed, diverged or timed out): observed as failed
            v = float(values[p.rung].get(p.spec.arch_id, math.nan))
            out.append(Observation(p.spec, p.rung, v, "done" if math.isfinite(v) else "failed",
                                   {"seconds": seconds.get(p.spec.arch_id, 0.0),
                                    "cpu_seconds": cpu.get(p.spec.arch_id, 0.0)}))
        return out

    def rescore(self, history: list[list[Observation]]) -> list[list[Observation]]:
        """``history`` with every observation valued in the latest round's ranking (see the module
        docstring). Successive halving's rounds are rungs, each on its own scale: unchanged."""
        if self.rungs or not history:
            return history
        values = self.latest
        out = []
        for round_ in history:
            new = []
            for o in round_:
                v = float(values.get(o.spec.arch_id, math.nan))
                new.append(o if v == o.score or (math.isnan(v) and math.isnan(o.score))
                           else dataclasses.replace(o, score=v, status="done" if math.isfinite(v) else "failed"))
            out.append(new)
        return out

    def cleanup(self) -> None:
        """After the last round: no candidate continues, so every rung's checkpoints can go."""
        if not self.rungs:
            return
        statuses = self.store.statuses()
        for j in self.jobs:
            if j.stop and statuses.get(j.job_id) == "done":
                shutil.rmtree(checkpoint_dir(self.store.path.parent, j.lineage_id), ignore_errors=True)
