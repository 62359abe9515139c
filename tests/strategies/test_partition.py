"""LaNAS's partition: splits, regions and UCT on toy spaces, checked by hand."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from unnas.strategies.base import Observation
from unnas.strategies.lanas import LaNAS, features
from unnas.strategies.partition import Partition, fit_split


def cube(bits):
    return np.array(list(itertools.product((0, 1), repeat=bits)), dtype=float)


def test_split_by_mean_prediction_on_a_linear_score():
    # y = x0 + 2 x1 on the 8 corners of the 3-cube: least squares is exact (w = 1, 2, 0; b = 0);
    # the mean prediction 1.5 sends x1 = 1 to the good side; inside, 2 + x0 splits at 2.5, x0 at 0.5
    X = cube(3)
    y = X[:, 0] + 2 * X[:, 1]
    tree = Partition.fit(X, y, height=3)
    assert sorted(tree.splits) == [0, 1, 2]
    root = tree.splits[0]
    assert np.allclose(root.w, [1, 2, 0]) and root.b == pytest.approx(0, abs=1e-12)
    assert [tree.splits[i].threshold for i in (0, 1, 2)] == pytest.approx([1.5, 2.5, 0.5])
    leaves = tree.leaves(X)
    expected = {(1, 1): 3, (0, 1): 4, (1, 0): 5, (0, 0): 6}  # (x0, x1) -> leaf
    assert [expected[(int(a), int(b))] for a, b, _ in X] == list(leaves)
    n, mean = tree.stats(X, y)
    assert list(n) == [8, 4, 4, 2, 2, 2, 2]
    assert list(mean) == pytest.approx([1.5, 2.5, 0.5, 3, 2, 1, 0])
    # the region of leaf 3 is exactly x0 = x1 = 1
    assert list(tree.inside(X, [(0, True), (1, True)])) == [bool(a and b) for a, b, _ in X]
    assert list(tree.inside(X, [(0, False)])) == [not b for _, b, _ in X]


def test_uct_values_and_selection_by_hand():
    X = cube(3)
    y = X[:, 0] + 2 * X[:, 1]
    tree = Partition.fit(X, y, height=3)
    n, mean = tree.stats(X, y)
    cp = 0.3  # 2 Cp = 0.6
    assert tree.uct(1, n, mean, cp) == pytest.approx(2.5 + 0.6 * math.sqrt(2 * math.log(8) / 4))  # 3.1118
    assert tree.uct(2, n, mean, cp) == pytest.approx(0.5 + 0.6 * math.sqrt(2 * math.log(8) / 4))
    assert tree.uct(3, n, mean, cp) == pytest.approx(3.706446, abs=1e-6)  # 3 + 0.6 sqrt(2 ln 4 / 2)
    leaf, path = tree.select(n, mean, cp, np.random.default_rng(0))
    assert leaf == 3 and path == [(0, True), (1, True)]
    # exploration: a rarely visited bad side wins once Cp is large enough
    n2 = np.array([10, 9, 1, 5, 4, 1, 0], dtype=float)
    mean2 = np.array([1.95, 2.0, 1.5, 2.2, 1.75, 1.5, np.nan])
    # good: 2 + 2 * 0.5 * sqrt(2 ln 10 / 9) = 2.7153; bad: 1.5 + sqrt(2 ln 10) = 3.6460
    assert tree.uct(1, n2, mean2, 0.5) == pytest.approx(2.715322, abs=1e-6)
    assert tree.uct(2, n2, mean2, 0.5) == pytest.approx(3.645966, abs=1e-6)
    assert tree.select(n2, mean2, 0.5, np.random.default_rng(0))[1][0] == (0, False)
    assert tree.select(n2, mean2, 0.0, np.random.default_rng(0))[1][0] == (0, True)
    # an empty child is infinitely attractive: node 2's children are 5 (n = 1) and 6 (n = 0)
    assert tree.uct(6, n2, mean2, 0.0) == math.inf
    assert tree.select(n2, mean2, 0.5, np.random.default_rng(0)) == (6, [(0, False), (2, False)])
    # visited within a round but not scored: node 2's mean stands in for node 6's
    n2[[0, 2, 6]] = 11, 2, 1
    assert tree.uct(6, n2, mean2, 0.5) == pytest.approx(2.677410, abs=1e-6)  # 1.5 + sqrt(2 ln 2)


def test_no_split_without_signal():
    X = cube(2)
    assert fit_split(X, np.ones(4)) is None  # constant score
    assert fit_split(X[:1], np.ones(1)) is None  # one sample
    assert Partition.fit(X, np.ones(4), height=4).splits == {}
    assert Partition.fit(X, X[:, 0], height=1).splits == {}  # height 1: the root is the only leaf


def test_onehot_features():
    f = features(np.array([[0, 2], [1, 0]]), [2, 3], "onehot")
    assert f.tolist() == [[1, 0, 0, 0, 1], [0, 1, 1, 0, 0]]
    assert features(np.array([[0, 2]]), [2, 3], "codes").tolist() == [[0, 2]]


def _history(space, codes_list, score):
    return [[Observation(space.decode(c), 0, float(score(c)))] for c in codes_list]


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_lanas_cp_is_a_fraction_of_the_score_range(toy, scale):
    # 4 bits, y = scale * x0: the root splits on x0 (mean 0.75 with 6 good, 2 bad samples seen).
    # UCT good = 1 + 2 cp * sqrt(2 ln 8 / 6), bad = 0 + 2 cp * sqrt(2 ln 8 / 2) (in units of the
    # range): the bad side wins iff cp > 1 / (2 (1.44202 - 0.83255)) = 0.8204, whatever the scale
    space = toy([2, 2, 2, 2])
    good = [(1, 0, 0, 0), (1, 1, 0, 0), (1, 0, 1, 0), (1, 0, 0, 1), (1, 1, 1, 0), (1, 1, 0, 1)]
    bad = [(0, 0, 0, 0), (0, 1, 1, 1)]
    history = _history(space, good + bad, lambda c: scale * c[0])
    for cp, side in ((0.5, 1), (0.8, 1), (0.85, 0), (1.0, 0)):
        for seed in range(5):  # whatever the draw, the proposal lies on the chosen side
            s = LaNAS(space, {"samples": 100, "height": 2, "init_samples": 8, "features": "codes", "cp": cp}, seed)
            codes = tuple(s.propose(history)[0].spec.params["codes"])
            assert codes[0] == side and codes not in set(good + bad)


@pytest.mark.parametrize("rejection", [False, True])
def test_lanas_samples_inside_the_best_leaf(toy, rejection):
    # 6 positions x 3 values, y = w . codes with w > 0: the best network (all 2s) lies in the
    # all-good leaf; with cp = 0 every proposal after the warm-up lies in the region UCT picks,
    # and the good side's mean is the larger one, so the path is all-good
    space = toy([3] * 6)
    w = np.array([5.0, 4, 3, 2, 1, 0.5])
    rng = np.random.default_rng(1)
    drawn = sorted({tuple(int(v) for v in rng.integers(0, 3, 6)) for _ in range(40)})
    history = _history(space, drawn, lambda c: w @ c)
    opts = {"samples": 200, "height": 3, "init_samples": len(history), "cp": 0.0}
    state = LaNAS(space, opts, seed=0).state_for(history)
    tree = state.tree
    assert tree is not None and 0 in tree.splits
    leaf, path = tree.select(*tree.stats(np.asarray(state.X), np.asarray(state.y)), 0.0, np.random.default_rng(0))
    assert len(path) == 2 and all(good for _, good in path)
    best = features(np.array([[2] * 6]), [3] * 6, "onehot")
    assert tree.inside(best, path)[0]
    for seed in range(5):  # exact choice among the region's networks, or rejection sampling
        strategy = LaNAS(space, opts, seed)
        if rejection:
            strategy.enumerate_limit = 0
        prop = strategy.propose(history)[0]
        f = features(np.array([prop.spec.params["codes"]]), [3] * 6, "onehot")
        assert tree.inside(f, path)[0]
