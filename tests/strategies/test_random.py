"""Random search: uniform, seeded, never a candidate twice, ends when the space is exhausted."""

from __future__ import annotations

import numpy as np

from unnas.strategies.base import SearchSpace
from unnas.strategies.loop import drive, flatten
from unnas.strategies.random import RandomSearch


def test_no_repeats_until_the_space_is_exhausted(toy, oracle):
    space = toy([3, 3])
    evaluate = oracle([1.0, 1.0])
    history = drive(RandomSearch(space, {"samples": 20, "round_size": 4}, seed=0), evaluate)
    codes = [tuple(o.spec.params["codes"]) for o in flatten(history)]
    assert sorted(codes) == [(i, j) for i in range(3) for j in range(3)]  # all 9, once each
    assert [len(r) for r in history] == [4, 4, 1]
    assert set(evaluate.calls.values()) == {1}


def test_seeded_and_reproducible(toy, oracle):
    space = toy([4, 4, 4])

    def run(seed):
        return [o.spec.arch_id for o in flatten(drive(RandomSearch(space, {"samples": 12}, seed), oracle([1, 2, 3])))]

    assert run(5) == run(5)
    assert run(5) != run(6)
    assert len(set(run(5))) == 12


def test_draws_are_uniform(toy):
    # first proposal over 600 seeds on a 6-network space: each about 100 times
    space = toy([2, 3])
    counts = {}
    for seed in range(600):
        c = tuple(RandomSearch(space, {"samples": 1}, seed).propose([])[0].spec.params["codes"])
        counts[c] = counts.get(c, 0) + 1
    assert len(counts) == 6 and min(counts.values()) > 70 and max(counts.values()) < 130  # sd 9.1


def test_searches_generators_without_an_encoding():
    space = SearchSpace("randwire-ws", {"nodes": 8})
    assert not space.searchable
    props = RandomSearch(space, {"samples": 5, "round_size": 5}, seed=0).propose([])
    assert len({p.spec.arch_id for p in props}) == 5


def test_canonical_specs_with_an_encoding():
    # a seed-drawn NDS-DARTS cell is proposed as its explicit genotype (one network, one arch_id)
    space = SearchSpace("nds-darts")
    props = RandomSearch(space, {"samples": 3, "round_size": 3}, seed=0).propose([])
    for p in props:
        assert p.spec.params["genotype"] and p.spec.seed == 0
        assert space.canonical(p.spec) == p.spec
    raw = space.sample(np.random.default_rng([0, 0]))
    assert raw.params["genotype"] == "" and space.canonical(raw) == props[0].spec
