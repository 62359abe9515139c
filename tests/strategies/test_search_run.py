"""Strategy searches through the run machinery: the oracle (a table answers, no job), label-free
scores from jobs in the store, time budgets, resume without evaluating a candidate twice."""

from __future__ import annotations

import csv
import itertools
import json

import pytest

from unnas import config
from unnas.search_run import percentile, run_search
from unnas.store import Store


def _macro_table(tmp_path):
    """Every NAS-Bench-Macro network with a made-up accuracy that rises with each layer's choice."""
    path = tmp_path / "macro.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["structure", "accuracy"])
        for digits in itertools.product("012", repeat=8):
            code = [int(d) for d in digits]
            w.writerow(["".join(digits), 80 + sum((8 - i) * c for i, c in enumerate(code)) / 10])
    return path


def _cfg(tmp_path, name, *overrides):
    return config.load(None, [f"run.runs_dir={tmp_path}", f"run.name={name}", "model.generator=macro",
                              "run.device=cpu", *overrides])


def test_oracle_search_runs_no_job_and_reports_the_percentile(tmp_path):
    table = _macro_table(tmp_path)
    cfg = _cfg(tmp_path, "oracle", f"reference.path={table}", "search.strategy=lanas", "search.score=reference",
               "lanas.samples=40")
    assert run_search(cfg, quiet=True) == 0
    out = json.loads((tmp_path / "oracle" / "search.json").read_text())
    assert out["evaluated"] == 40 and len(out["trajectory"]) == 40
    best = out["best"]
    assert best["reference"] == pytest.approx(max(t["reference"] for t in out["trajectory"]))
    assert best["percentile"] > 90  # a linear space: LaNAS finds the good corner quickly
    bests = [t["best"] for t in out["trajectory"]]
    assert bests == sorted(bests)  # best so far never decreases
    assert not (tmp_path / "oracle" / "store.sqlite").exists()  # nothing ran
    assert (tmp_path / "oracle" / "search_trajectory.png").is_file()


def test_a_finished_oracle_search_that_trains_nothing_can_be_rerun(tmp_path):
    """A search scored by its table with ``run.pretext=none`` names no objective; reopening its run
    folder compares configurations without asking for one."""
    table = _macro_table(tmp_path)
    cfg = _cfg(tmp_path, "again", f"reference.path={table}", "search.strategy=random", "search.score=reference",
               "random.samples=6", "run.pretext=none", "run.supervised=false")
    assert run_search(cfg, quiet=True) == 0
    first = json.loads((tmp_path / "again" / "search.json").read_text())
    assert run_search(cfg, quiet=True) == 0
    again = json.loads((tmp_path / "again" / "search.json").read_text())
    assert [t["arch_id"] for t in again["trajectory"]] == [t["arch_id"] for t in first["trajectory"]]


def test_percentile_by_hand():
    class T:
        values = {"a": 0.1, "b": 0.5, "c": 0.5, "d": 0.9}

    # 0.5: one lower network of the three others, one tie counted half
    assert percentile(T, 0.5) == 100 * 1.5 / 3 and percentile(T, 0.1) == 0.0 and percentile(T, 0.9) == 100.0


def test_proxy_driven_search_stores_every_candidate_once_and_resumes(tmp_path):
    args = ["data.name=fake", "data.image_size=16", "run.pretext=none", "run.proxies=naswot", "search.strategy=evolution",
            "evolution.samples=6", "evolution.population=3", "evolution.tournament=2", "evolution.round_size=2",
            "model.params.width=0.125"]
    cfg = _cfg(tmp_path, "ev", *args)
    assert run_search(cfg, quiet=True) == 0
    with Store(tmp_path / "ev" / "store.sqlite") as st:
        rows = st.rows()
    assert len(rows) == 6 and len({r.arch_id for r in rows}) == 6 and {r.objective for r in rows} == {"naswot"}
    first = json.loads((tmp_path / "ev" / "search.json").read_text())
    assert first["cpu_seconds"] >= 0.9 * first["job_cpu_seconds"] > 0  # the workers' CPU time is counted
    # a rerun replays the store: the same proposals, nothing evaluated again
    assert run_search(cfg, quiet=True) == 0
    with Store(tmp_path / "ev" / "store.sqlite") as st:
        assert len(st.rows()) == 6
    again = json.loads((tmp_path / "ev" / "search.json").read_text())
    assert [t["arch_id"] for t in again["trajectory"]] == [t["arch_id"] for t in first["trajectory"]]
    assert [t["score"] for t in again["trajectory"]] == [t["score"] for t in first["trajectory"]]
    ranking = json.loads((tmp_path / "ev" / "ranking.json").read_text())
    assert ranking["primary"] == "naswot"


def test_time_budget_stops_after_the_round_that_reaches_it(tmp_path):
    args = ["data.name=fake", "data.image_size=16", "run.pretext=none", "run.proxies=naswot", "search.strategy=random",
            "random.samples=50", "search.time_budget=1e-9", "model.params.width=0.125"]
    assert run_search(_cfg(tmp_path, "tb", *args), quiet=True) == 0
    out = json.loads((tmp_path / "tb" / "search.json").read_text())
    saved = config.load(str(tmp_path / "tb" / "config.yaml"), [])
    assert out["evaluated"] == saved.objectives["random"].round_size  # the first round spends more than the budget


def test_round_size_zero_is_one_proposal_per_worker(tmp_path):
    from unnas.search_run import resolve_round_size
    from unnas.strategies.base import SearchSpace
    from unnas.strategies.lanas import LaNAS

    base = ["data.name=fake", "run.pretext=none", "run.proxies=naswot", "search.strategy=lanas"]
    size = lambda *extra: resolve_round_size(_cfg(tmp_path, "x", *base, *extra)).objectives["lanas"].round_size  # noqa: E731
    assert size("run.executor=pool", "run.workers=3") == 3
    assert size("run.executor=auto", "run.workers=2") == 2
    assert size("run.executor=local") == 1
    assert size("run.executor=pool", "run.workers=3", "lanas.round_size=1") == 1  # given: kept
    assert size("run.executor=pool", "run.workers=3", "lanas.round_size=5") == 5
    strategy = LaNAS(SearchSpace("macro", {}), {"samples": 4}, 0)  # on its own, unresolved: rounds of 1
    assert strategy.options.round_size == 0 and len(strategy.propose([])) == 1


def test_bad_search_options_are_refused(tmp_path):
    from unnas.errors import UserError

    with pytest.raises(UserError, match="--score"):
        run_search(_cfg(tmp_path, "x", "search.strategy=random", "search.score=reference"), quiet=True)
    with pytest.raises(UserError, match="unnas.rank"):
        run_search(_cfg(tmp_path, "x", "search.strategy=sh"), quiet=True)
    with pytest.raises(UserError, match="unknown strategy"):
        run_search(_cfg(tmp_path, "x", "search.strategy=nope"), quiet=True)
    assert not (tmp_path / "x").exists()


def test_time_budget_counts_the_clock_it_is_given(toy):
    from unnas.search_run import TimeBudget
    from unnas.spec import ArchSpec
    from unnas.strategies.base import Observation, Proposal, Strategy

    class Always(Strategy):
        def propose(self, history):
            return [Proposal(ArchSpec("toy-grid", {"codes": [0, 0], "cards": [2, 2]}, 0))]

    def obs(wall, cpu):
        return Observation(ArchSpec("toy-grid", {"codes": [0, 0], "cards": [2, 2]}, 0), 0, 1.0, "done",
                           {"seconds": wall, "cpu_seconds": cpu})

    history = [[obs(4.0, 1.0)], [obs(4.0, 1.5)]]  # 8 wall seconds, 2.5 CPU seconds
    inner = Always(toy([2, 2]))
    assert TimeBudget(inner, 8.0, "wall").propose(history) == []
    assert TimeBudget(inner, 8.5, "wall").propose(history) != []
    assert TimeBudget(inner, 2.5, "cpu").propose(history) == []
    assert TimeBudget(inner, 3.0, "cpu").propose(history) != []
    assert TimeBudget(inner, 0.0, "cpu").propose(history) != []  # 0 = no limit
