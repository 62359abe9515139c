"""The job loop's rounds (:class:`unnas.rounds.RoundRunner`) with jobs answered by a stub that commits
rows of known scores: which column scores a proposal, on which scale, and what a rung runs."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from unnas import config
from unnas.rounds import RoundRunner
from unnas.spec import ArchSpec
from unnas.store import JobRow, Store
from unnas.strategies.base import Proposal, SearchSpace, Strategy
from unnas.strategies.loop import drive, flatten
from unnas.strategies.population import PopulationOptions, SuccessiveHalving


def _cfg(tmp_path, *overrides):
    return config.load(None, [f"run.runs_dir={tmp_path}", "model.generator=macro", "run.device=cpu",
                              "run.supervised=false", *overrides])


def _uniform(*key) -> float:
    return int(hashlib.sha1(repr(key).encode()).hexdigest()[:12], 16) / 16 ** 12


class StubJobs:
    """Commits one ``done`` row per job; ``score(arch_id, objective, stop)`` gives its score."""

    def __init__(self, store: Store, score):
        self.store, self.score, self.ran = store, score, []

    def __call__(self, jobs) -> None:
        for j in jobs:
            self.ran.append(j)
            metrics = {"score": self.score(j.spec.arch_id, j.objective, j.stop), "epochs": j.stop}
            self.store.put(JobRow(j.job_id, j.spec.arch_id, j.spec.to_json(), j.spec.generator, j.objective, j.seed,
                                  "done", metrics, seconds=1.0))


def _specs(n: int) -> list[ArchSpec]:
    return [ArchSpec("macro", {"width": 0.125}, seed=i + 1) for i in range(n)]


def _runner(tmp_path, cfg, score, **kw):
    store = Store(tmp_path / "store.sqlite")
    jobs = StubJobs(store, score)
    return RoundRunner(cfg, store, jobs, **kw), jobs


def _sh(specs, rungs, eta=2):
    return SuccessiveHalving(SearchSpace("macro", {}), PopulationOptions(tuple(specs), tuple(rungs), eta), 0)


def test_successive_halving_promotes_by_the_first_objective_named(tmp_path):
    """``--pretext rotation,jigsaw`` with jigsaw = 1 - rotation: the survivors are rotation's best."""
    cfg = _cfg(tmp_path, "run.pretext=rotation,jigsaw")
    specs = _specs(6)
    u = {s.arch_id: _uniform(s.arch_id) for s in specs}
    runner, _ = _runner(tmp_path, cfg, lambda a, o, stop: u[a] if o == "rotation" else 1 - u[a], rungs=[1, 2])
    history = drive(_sh(specs, [1, 2]), runner)
    promoted = {o.spec.arch_id for o in history[1]}
    assert promoted == set(sorted(u, key=u.get)[-3:])
    assert all(o.score == pytest.approx(u[o.spec.arch_id]) for o in flatten(history))


class Fixed(Strategy):
    """Proposes ``specs`` in rounds of ``k`` (reads no score)."""

    name = "stub"

    def __init__(self, specs, k=1):
        self.specs, self.k = list(specs), k

    def propose(self, history):
        done = sum(len(r) for r in history)
        return [Proposal(s) for s in self.specs[done:done + self.k]]


def test_a_search_scored_by_an_ensemble_compares_every_candidate_on_one_scale(tmp_path):
    """Two i.i.d. scores, 200 candidates one per round, scored by their rank ensemble: every
    observation is its value among all 200 (not a rank frozen among the candidates seen then), so
    the early and late halves average alike and the best observed is the ensemble's best."""
    from scipy.stats import rankdata

    cfg = _cfg(tmp_path, "run.pretext=rotation", "run.proxies=naswot", "run.ensembles=['rotation,naswot']")
    specs = _specs(200)
    runner, _ = _runner(tmp_path, cfg, lambda a, o, stop: _uniform(a, o), select="ensemble(rotation+naswot)")
    history = drive(Fixed(specs), runner)
    obs = flatten(history)
    ids = [s.arch_id for s in specs]
    rot = rankdata([_uniform(a, "rotation") for a in ids])
    nas = rankdata([_uniform(a, "naswot") for a in ids])
    expected = (rot + nas) / 2
    assert [o.score for o in obs] == pytest.approx(list(expected))
    first, last = np.mean([o.score for o in obs[:50]]), np.mean([o.score for o in obs[-50:]])
    assert abs(first - last) < 25  # drifting ranks: about 15 against 85
    best = max(obs, key=lambda o: o.score)
    assert best.spec.arch_id == ids[int(np.argmax(expected))]


def test_scores_that_are_not_ranks_are_not_changed_by_rescoring(tmp_path):
    cfg = _cfg(tmp_path, "run.pretext=rotation")
    specs = _specs(5)
    runner, _ = _runner(tmp_path, cfg, lambda a, o, stop: _uniform(a, o))
    obs = flatten(drive(Fixed(specs, k=2), runner))
    assert [o.score for o in obs] == [_uniform(s.arch_id, "rotation") for s in specs]


def test_proxy_first_rung_trains_nothing_and_ranks_by_the_proxy(tmp_path):
    """Rungs [0, 1, 2]: rung 0 runs only the proxy and keeps the proxy's best half; later rungs
    train the survivors and rank them by the ensemble of the proxy and the trained score."""
    cfg = _cfg(tmp_path, "run.pretext=rotation", "run.proxies=naswot", "run.ensembles=['rotation,naswot']")
    specs = _specs(8)
    prox = {s.arch_id: _uniform(s.arch_id, "naswot") for s in specs}
    rot = {s.arch_id: _uniform(s.arch_id, "rotation") for s in specs}

    def score(a, o, stop):
        return prox[a] if o == "naswot" else rot[a] * stop

    runner, jobs = _runner(tmp_path, cfg, score, select="ensemble(rotation+naswot)", rungs=[0, 1, 2])
    history = drive(_sh(specs, [0, 1, 2]), runner)
    assert [len(r) for r in history] == [8, 4, 2]
    assert [o.score for o in history[0]] == [prox[s.arch_id] for s in specs]  # the proxy alone at rung 0
    survivors = sorted(prox, key=prox.get)[-4:]
    assert {o.spec.arch_id for o in history[1]} == set(survivors)
    trained = [j for j in jobs.ran if j.objective == "rotation"]
    assert sorted((j.spec.arch_id, j.stop) for j in trained) == sorted(
        [(a, 1) for a in survivors] + [(o.spec.arch_id, 2) for o in history[2]])
    assert sum(j.objective == "naswot" for j in jobs.ran) == 8  # once per candidate
    from scipy.stats import rankdata

    ens = (rankdata([rot[a] for a in survivors]) + rankdata([prox[a] for a in survivors])) / 2
    assert {o.spec.arch_id: o.score for o in history[1]} == pytest.approx(dict(zip(survivors, ens)))
    assert all(math.isfinite(o.score) for o in flatten(history))


def test_a_round_runs_candidate_by_candidate(tmp_path):
    """Every job of a candidate (its objectives, its reference, its proxies) before the next one's."""
    cfg = _cfg(tmp_path, "run.pretext=rotation,jigsaw", "run.supervised=true", "run.proxies=naswot")
    specs = _specs(3)
    runner, jobs = _runner(tmp_path, cfg, lambda a, o, stop: _uniform(a, o))
    runner([Proposal(s) for s in specs])
    assert [j.spec.arch_id for j in jobs.ran] == [s.arch_id for s in specs for _ in range(4)]
    assert [j.objective for j in jobs.ran[:4]] == ["rotation", "jigsaw", "supervised", "naswot"]
