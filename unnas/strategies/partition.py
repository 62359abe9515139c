"""LaNAS's learned partition of a search space (Wang et al., "Sample-Efficient Neural Architecture
Search by Learning Action Space"): a binary tree whose nodes split their samples with a linear
regressor.

Nodes are numbered in heap order: the root is 0, node ``i``'s children are ``2i + 1`` (the good
side) and ``2i + 2`` (the bad side); a tree of height ``h`` has at most ``2**h - 1`` nodes.
Fitting a node: least squares ``score ~ w . x + b`` on the feature rows of the samples it holds;
the samples whose prediction is at least the mean prediction go to the good child, the others to
the bad child (for least squares with an intercept the mean prediction equals the mean score).
A node is a leaf when it is at depth ``h - 1``, holds fewer than two samples, or its predictions
are all equal (no split). The region of a node is the set of feature vectors that satisfy every
split on its path (``w . x + b >= t`` on the good side, ``< t`` on the bad side).

UCT (as the authors' code): a child's value is ``mean + 2 Cp sqrt(2 ln n_parent / n_child)``
(infinite for an empty child; a child visited but not yet scored, as within a round, takes its
nearest scored ancestor's mean); the walk from the root takes the larger value, ties broken at
random, down to a leaf.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Path = list[tuple[int, bool]]  # (split node, True = good side) from the root down


@dataclass(frozen=True)
class Split:
    w: np.ndarray
    b: float
    threshold: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        return X @ self.w + self.b

    def good(self, X: np.ndarray) -> np.ndarray:
        return self.predict(X) >= self.threshold


def fit_split(X: np.ndarray, y: np.ndarray) -> Split | None:
    """The linear split of one node's samples, or None when it cannot split them."""
    if len(y) < 2:
        return None
    A = np.hstack([X, np.ones((len(X), 1))])
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    split = Split(coef[:-1].copy(), float(coef[-1]), 0.0)
    pred = split.predict(X)
    t = float(pred.mean())
    if pred.max() - pred.min() <= 1e-12 * max(1.0, abs(t)):
        return None
    split = Split(split.w, split.b, t)
    good = split.good(X)
    return split if 0 < good.sum() < len(y) else None


class Partition:
    """A fitted tree: ``splits[node]`` for every internal node."""

    def __init__(self, height: int, splits: dict[int, Split]):
        self.height = height
        self.splits = splits

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, height: int) -> "Partition":
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        splits: dict[int, Split] = {}
        stack = [(0, np.arange(len(y)), 0)]
        while stack:
            node, idx, depth = stack.pop()
            if depth >= height - 1:
                continue
            split = fit_split(X[idx], y[idx])
            if split is None:
                continue
            splits[node] = split
            good = split.good(X[idx])
            stack += [(2 * node + 1, idx[good], depth + 1), (2 * node + 2, idx[~good], depth + 1)]
        return cls(height, splits)

    @property
    def n_nodes(self) -> int:
        return 2 ** self.height - 1

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """The leaf each feature row falls in."""
        X = np.asarray(X, dtype=np.float64)
        node = np.zeros(len(X), dtype=np.int64)
        for _ in range(self.height - 1):
            for s, split in self.splits.items():
                rows = node == s
                if rows.any():
                    node[rows] = np.where(split.good(X[rows]), 2 * s + 1, 2 * s + 2)
        return node

    def stats(self, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per node: how many samples its region holds and their mean score (nan when none)."""
        y = np.asarray(y, dtype=np.float64)
        leaves = self.leaves(X)
        n = np.bincount(leaves, minlength=self.n_nodes).astype(np.float64)
        total = np.bincount(leaves, weights=y, minlength=self.n_nodes)
        for node in range(self.n_nodes - 1, 0, -1):  # children before parents
            n[(node - 1) // 2] += n[node]
            total[(node - 1) // 2] += total[node]
        with np.errstate(invalid="ignore", divide="ignore"):
            return n, total / n

    def uct(self, child: int, n: np.ndarray, mean: np.ndarray, cp: float) -> float:
        if n[child] == 0:
            return math.inf
        parent = (child - 1) // 2
        value, node = mean[child], child
        while math.isnan(value) and node > 0:  # visited but not yet scored: the nearest scored ancestor's mean
            node = (node - 1) // 2
            value = mean[node]
        return float(value + 2.0 * cp * math.sqrt(2.0 * math.log(n[parent]) / n[child]))

    def select(self, n: np.ndarray, mean: np.ndarray, cp: float, rng: np.random.Generator) -> tuple[int, Path]:
        """Walk from the root to a leaf by UCT; the leaf and the path of (split node, good side)."""
        node, path = 0, []
        while node in self.splits:
            good, bad = 2 * node + 1, 2 * node + 2
            u_good, u_bad = self.uct(good, n, mean, cp), self.uct(bad, n, mean, cp)
            take_good = u_good > u_bad or (u_good == u_bad and bool(rng.integers(2) == 0))
            path.append((node, take_good))
            node = good if take_good else bad
        return node, path

    def inside(self, X: np.ndarray, path: Path) -> np.ndarray:
        """Which feature rows satisfy every split of ``path``."""
        X = np.asarray(X, dtype=np.float64)
        mask = np.ones(len(X), dtype=bool)
        for node, good_side in path:
            g = self.splits[node].good(X)
            mask &= g if good_side else ~g
        return mask
