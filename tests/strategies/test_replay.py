"""Every strategy is a pure function of the observed rounds and its seed: a prefix of the history
gives the same proposals, and a search stopped after k rounds and restarted from its stored
results proposes exactly what the uninterrupted one does, never evaluating a candidate twice."""

from __future__ import annotations

import math

import pytest

from unnas.errors import UserError
from unnas.registry import STRATEGIES
from unnas.strategies.base import Observation, SearchSpace
from unnas.strategies.loop import drive, flatten

CARDS = [3, 3, 2, 3]
WEIGHTS = [1.0, -2.0, 0.5, 3.0]
FAIL = frozenset((a, b, 1, d) for a in range(3) for b in range(3) for d in range(3) if a == 0)  # 9 of 54 fail
SETTINGS = {
    "random": {"samples": 30},
    "evolution": {"samples": 30, "population": 6, "tournament": 3},
    "lanas": {"samples": 30, "height": 3, "init_samples": 5, "refit_every": 4},
}
CASES = [(name, r) for name in SETTINGS for r in (1, 4)] + [("lanas-rejection", 1), ("lanas-rejection", 4)]


def make(name, round_size, toy, seed=7):
    base = name.split("-")[0]
    extra = {"rejection_draws": 300} if name == "lanas-rejection" else {}
    s = STRATEGIES.get(base)(toy(CARDS), {**SETTINGS[base], **extra, "round_size": round_size}, seed)
    if name == "lanas-rejection":  # sample regions by rejection, as in spaces too large to enumerate
        s.enumerate_limit = 0
    return s


class Store:
    """A results store in memory: a proposal with a row is answered from it, not evaluated again."""

    def __init__(self, evaluate):
        self.rows: dict[str, Observation] = {}
        self.evaluate = evaluate

    def __call__(self, proposals):
        todo = [p for p in proposals if p.spec.arch_id not in self.rows]
        for p, o in zip(todo, self.evaluate(todo)):
            self.rows[p.spec.arch_id] = o
        return [self.rows[p.spec.arch_id] for p in proposals]


@pytest.mark.parametrize("name,round_size", CASES)
def test_prefix_of_the_history_reproduces_the_proposals(name, round_size, toy, oracle):
    recorded = []
    strategy = make(name, round_size, toy)
    evaluate = oracle(WEIGHTS, FAIL)

    def recording(proposals):
        recorded.append(proposals)
        return evaluate(proposals)

    history = drive(strategy, recording)
    assert sum(map(len, history)) == 30
    ids = [o.spec.arch_id for o in flatten(history)]
    assert len(ids) == len(set(ids))  # never a candidate twice
    assert any(math.isnan(o.score) for o in flatten(history))  # failed jobs are part of the history
    fresh = make(name, round_size, toy)
    for k in range(len(history) + 1):  # a fresh instance on every prefix
        assert fresh.propose(history[:k]) == (recorded[k] if k < len(recorded) else [])
    for k in (len(history) - 1, 2, len(history) // 2, 0):  # the cached instance, prefixes out of order
        assert strategy.propose(history[:k]) == recorded[k]


@pytest.mark.parametrize("name,round_size", CASES)
@pytest.mark.parametrize("kill_after", [1, 3, 6])
def test_killed_and_resumed_search_proposes_what_the_uninterrupted_one_does(name, round_size, kill_after, toy,
                                                                             oracle):
    uninterrupted = drive(make(name, round_size, toy), oracle(WEIGHTS, FAIL))
    evaluate = oracle(WEIGHTS, FAIL)
    store = Store(evaluate)
    first = drive(make(name, round_size, toy), store, max_rounds=kill_after)
    assert first == uninterrupted[:kill_after]
    resumed = drive(make(name, round_size, toy), store)  # a new process: replays the store
    assert resumed == uninterrupted
    assert set(evaluate.calls.values()) == {1}  # no candidate evaluated twice
    assert len(evaluate.calls) == sum(map(len, uninterrupted))


def test_different_seeds_differ(toy, oracle):
    for name in SETTINGS:
        a = drive(make(name, 1, toy, seed=1), oracle(WEIGHTS))
        b = drive(make(name, 1, toy, seed=2), oracle(WEIGHTS))
        assert [o.spec for o in flatten(a)] != [o.spec for o in flatten(b)]


def test_registered_with_their_options():
    for name in ("random", "evolution", "lanas"):
        cls = STRATEGIES.meta(name)["config"]
        assert cls().samples == 100 and cls().round_size == 0  # 0: one proposal per worker
    assert STRATEGIES.meta("evolution")["config"]().population == 100
    lanas = STRATEGIES.meta("lanas")["config"]()
    assert (lanas.height, lanas.init_samples, lanas.refit_every, lanas.cp) == (5, 10, 20, 0.1)


@pytest.mark.parametrize("name", ["evolution", "lanas"])
def test_strategies_that_need_an_encoding_refuse_generators_without_one(name):
    with pytest.raises(UserError, match="--generator: generator randwire-ws cannot be searched"):
        STRATEGIES.get(name)(SearchSpace("randwire-ws"), None, 0)


@pytest.mark.parametrize("opts,field", [({"height": 0}, "lanas.height"), ({"cp": -1.0}, "lanas.cp"),
                                        ({"cp": math.inf}, "lanas.cp"), ({"features": "graph"}, "lanas.features"),
                                        ({"refit_every": 0}, "lanas.refit_every")])
def test_bad_lanas_options(toy, opts, field):
    with pytest.raises(UserError) as e:
        STRATEGIES.get("lanas")(toy(CARDS), opts, 0)
    assert str(e.value).startswith(field + ": ")


def test_bad_seed(toy):
    with pytest.raises(UserError, match="--seed"):
        STRATEGIES.get("random")(toy(CARDS), None, -1)


def test_a_history_rebuilt_from_stored_rows_extends_the_cache(toy, oracle):
    # rows read back from a store are new objects (a nan score is a new nan): still the same history
    strategy = make("lanas", 1, toy)
    history = drive(strategy, oracle(WEIGHTS, FAIL), max_rounds=12)
    rebuilt = [[Observation(type(o.spec).from_json(o.spec.to_json()), o.rung, float(str(o.score)), o.status)
                for o in r] for r in history]
    before = strategy._cache[1]
    assert strategy.propose(rebuilt) == strategy.propose(history)
    assert strategy._cache[1] is before  # extended, not rebuilt
