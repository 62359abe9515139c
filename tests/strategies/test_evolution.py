"""Regularized evolution: warm-up, tournament, one-position mutation, aging; checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unnas.errors import UserError
from unnas.strategies.base import Observation
from unnas.strategies.evolution import RegularizedEvolution


def obs(space, codes, score, status="done"):
    return Observation(space.decode(codes), 0, score, status=status)


def one_change(a, b) -> bool:
    return sum(x != y for x, y in zip(a, b)) == 1


def codes_of(p):
    return tuple(p.spec.params["codes"])


def test_warm_up_is_random_then_children(toy):
    space = toy([3, 3, 3])
    ev = RegularizedEvolution(space, {"samples": 50, "population": 4, "tournament": 2, "round_size": 3}, seed=0)
    first = ev.propose([])
    assert len(first) == 3  # a warm-up round: min(round_size, population - scored)
    h = [[obs(space, codes_of(p), 1.0) for p in first]]
    second = ev.propose(h)
    assert len(second) == 1  # the last warm-up candidate
    h.append([obs(space, codes_of(p), 2.0) for p in second])
    children = ev.propose(h)
    assert len(children) == 3
    parents = [codes_of(p) for r in (first, second) for p in r]
    for c in children:  # every child is one mutation away from a member of the population
        assert any(one_change(codes_of(c), p) for p in parents)


def test_tournament_over_the_whole_population_takes_the_best_and_aging_removes_the_oldest(toy):
    space = toy([4, 4, 4])
    ev = RegularizedEvolution(space, {"samples": 50, "population": 3, "tournament": 3}, seed=1)
    a, b, c = (0, 0, 0), (1, 1, 1), (2, 2, 2)
    h = [[obs(space, a, 9.0)], [obs(space, b, 1.0)], [obs(space, c, 2.0)]]
    state = ev.state_for(h)
    assert [tuple(int(v) for v in m[0]) for m in ev.population(state)] == [a, b, c]
    child = codes_of(ev.propose(h)[0])
    assert one_change(child, a)  # S = P: the parent is the best member, score 9
    h.append([obs(space, child, 0.0)])
    # aging: the oldest (a, the best so far) leaves; the population is b, c, child
    state = ev.state_for(h)
    assert [tuple(int(v) for v in m[0]) for m in ev.population(state)] == [b, c, child]
    for seed in range(5):  # now the parent is c (score 2), whatever the draws
        nxt = codes_of(RegularizedEvolution(space, ev.options, seed).propose(h)[0])
        assert one_change(nxt, c)


def test_a_failed_child_does_not_join_the_population(toy):
    space = toy([4, 4, 4])
    ev = RegularizedEvolution(space, {"samples": 50, "population": 2, "tournament": 2}, seed=0)
    h = [[obs(space, (0, 0, 0), 1.0)], [obs(space, (1, 1, 1), 2.0)], [obs(space, (1, 1, 2), math.nan, "failed")]]
    pop = ev.population(ev.state_for(h))
    assert [tuple(int(v) for v in m[0]) for m in pop] == [(0, 0, 0), (1, 1, 1)]
    nxt = codes_of(ev.propose(h)[0])
    assert one_change(nxt, (1, 1, 1)) and nxt != (1, 1, 2)  # never the failed one again


def test_tournament_of_one_is_a_uniform_member(toy):
    # S = 1: the parent is a uniform member; over seeds each of the 4 members parents about 1/4
    space = toy([5, 5, 5, 5])
    members = [(0, 0, 0, 0), (1, 1, 1, 1), (2, 2, 2, 2), (3, 3, 3, 3)]
    h = [[obs(space, m, float(i))] for i, m in enumerate(members)]
    counts = np.zeros(4)
    for seed in range(400):
        child = codes_of(RegularizedEvolution(space, {"population": 4, "tournament": 1}, seed).propose(h)[0])
        counts[[one_change(child, m) for m in members].index(True)] += 1
    assert counts.min() > 70 and counts.max() < 130  # binomial(400, 1/4): mean 100, sd 8.7


def test_mutation_changes_exactly_one_mutable_position(toy):
    space = toy([1, 3, 1, 2])  # positions with one value are never mutated
    ev = RegularizedEvolution(space, {"population": 2, "tournament": 1}, seed=0)
    rng = np.random.default_rng(0)
    parent = np.array([0, 1, 0, 1])
    seen = set()
    for _ in range(200):
        child = ev.mutate(parent, rng)
        assert one_change(child, parent) and child[0] == 0 and child[2] == 0
        seen.add(tuple(child))
    assert seen == {(0, 0, 0, 1), (0, 2, 0, 1), (0, 1, 0, 0)}


def test_exhausts_a_tiny_space_without_repeats(toy, oracle):
    from unnas.strategies.loop import drive, flatten

    space = toy([2, 2])
    ev = RegularizedEvolution(space, {"samples": 10, "population": 2, "tournament": 1}, seed=0)
    evaluate = oracle([1.0, 2.0])
    history = drive(ev, evaluate)
    ids = [o.spec.arch_id for o in flatten(history)]
    assert len(ids) == 4 == len(set(ids))  # the 4 networks, then the search ends
    assert set(evaluate.calls.values()) == {1}


@pytest.mark.parametrize("opts,field", [({"population": 1}, "evolution.population"),
                                        ({"population": 5, "tournament": 6}, "evolution.tournament"),
                                        ({"samples": 0}, "evolution.samples"),
                                        ({"round_size": 1.5}, "evolution.round_size"),
                                        ({"tournment": 2}, "evolution option")])
def test_bad_options_are_one_clear_error(toy, opts, field):
    with pytest.raises(UserError) as e:
        RegularizedEvolution(toy([2, 2]), opts, seed=0)
    assert str(e.value).startswith(field + ": ")
