"""LaNAS (Wang, Xie, Li, Fonseca, Tian, "Sample-Efficient Neural Architecture Search by Learning
Action Space"): Monte Carlo tree search over a partition of the space that is learned from the
samples (:mod:`unnas.strategies.partition`).

* **Warm-up**: ``init_samples`` uniform random candidates.
* **Fit**: the tree (height ``height``) is fitted on the features of every scored candidate; it
  is refitted once ``refit_every`` more candidates have been evaluated. Features are the one-hot
  encoding of the code vector (``features="onehot"``, default) or the codes themselves
  (``"codes"``).
* **Select**: between refits, every scored candidate is counted in the regions that hold it (so
  a new sample updates its path's count and mean, as the authors' back-propagation does); a leaf
  is chosen by UCT from the root with ``Cp = cp * (max score - min score)`` of the scores seen.
* **Sample**: a uniform unseen network of the chosen leaf's region (every linear constraint on
  its path). In a space of more than 65,536 networks, uniform code vectors
  (:meth:`SearchSpace.sample_codes`) are drawn until one lies in the region and was not observed
  (rejection sampling, as the authors' one-shot code); a smaller space is enumerated once and the
  choice made among the region's unseen networks directly (the same distribution, as their
  NAS-Bench-101 code, which enumerates the region). When the region holds no unseen network
  (or ``rejection_draws`` draws find none) it widens to the parent's region (the deepest
  constraint is dropped), up to the whole space; a space of up to 200,000 networks is finally
  enumerated.

Defaults follow the authors' NAS-Bench-101 code: height 5, 10 initial samples, a refit every 20
samples, Cp = 0.1 on accuracies in [0, 1] (here 0.1 of the observed score range, so the
exploration does not depend on the score's units). Their regressor is trained by Adam; here it is
the exact least-squares fit.

Rounds: every proposal of a round walks the tree with the statistics at the start of the round,
plus one visit (no score) on the path of each earlier proposal of the round, so a round spreads
over the leaves as UCT's exploration term grows. With ``round_size=1`` this is the sequential
algorithm exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unnas.registry import STRATEGIES
from unnas.spec import ArchSpec
from unnas.strategies.common import BudgetOptions, ReplayStrategy, State, is_int, require
from unnas.strategies.partition import Partition, Path

FEATURES = ("onehot", "codes")
BATCH = 256  # uniform draws tested at once in rejection sampling
ENUMERATE_REGION = 65536  # spaces up to this size sample a region exactly from all its networks


@dataclass(frozen=True)
class LaNASOptions(BudgetOptions):
    height: int = 5  # tree height: at most 2**(height - 1) leaves
    init_samples: int = 10  # uniform random candidates before the first fit
    refit_every: int = 20  # candidates evaluated between two fits of the tree
    cp: float = 0.1  # UCT exploration, as a fraction of the observed score range
    features: str = "onehot"  # regressor input: "onehot" | "codes"
    rejection_draws: int = 10000  # uniform draws per region before widening to the parent's


@dataclass
class LaNASState(State):
    X: list[np.ndarray] = field(default_factory=list)  # features of the scored candidates
    y: list[float] = field(default_factory=list)
    tree: Partition | None = None
    fitted_at: int = 0  # candidates evaluated at the last fit


def features(codes: np.ndarray, cards: list[int], kind: str) -> np.ndarray:
    """Regressor inputs of code vectors (rows): one-hot per position, or the codes."""
    codes = np.atleast_2d(np.asarray(codes, dtype=np.int64))
    if kind == "codes":
        return codes.astype(np.float64)
    offsets = np.concatenate([[0], np.cumsum(cards)[:-1]]).astype(np.int64)
    out = np.zeros((len(codes), int(sum(cards))))
    np.put_along_axis(out, codes + offsets, 1.0, axis=1)
    return out


@STRATEGIES.register("lanas", config=LaNASOptions)
class LaNAS(ReplayStrategy):
    name = "lanas"
    options_class = LaNASOptions
    state_class = LaNASState
    enumerate_limit = ENUMERATE_REGION

    def __init__(self, space, options=None, seed: int = 0):
        super().__init__(space, options, seed)
        self._all: tuple[np.ndarray, np.ndarray] | None = None  # every code vector and its features

    def check(self, o: LaNASOptions) -> None:
        super().check(o)
        for key in ("height", "init_samples", "refit_every", "rejection_draws"):
            v = getattr(o, key)
            require(self.name, key, v, is_int(v) and v >= 1, "an integer >= 1")
        require(self.name, "cp", o.cp, isinstance(o.cp, (int, float)) and not isinstance(o.cp, bool)
                and 0 <= o.cp < float("inf"), "a finite number >= 0")
        require(self.name, "features", o.features, o.features in FEATURES, FEATURES)

    def absorb(self, state: LaNASState, observations) -> None:
        done = len(state.scored)
        super().absorb(state, observations)
        for codes, score in state.scored[done:]:
            state.X.append(features(np.asarray(codes), self.cards, self.options.features)[0])
            state.y.append(score)
        o = self.options
        due = state.tree is None or state.count - state.fitted_at >= o.refit_every
        if state.count >= o.init_samples and due and state.y:
            state.tree = Partition.fit(np.asarray(state.X), np.asarray(state.y), o.height)
            state.fitted_at = state.count

    def next_round(self, state: LaNASState, n: int, rng: np.random.Generator) -> list[ArchSpec]:
        out: list[ArchSpec] = []
        taken: set[str] = set()
        if state.tree is None:  # warm-up (or nothing scored yet): uniform candidates
            n = min(n, max(1, self.options.init_samples - state.count))
            while len(out) < n and (spec := self.draw_unseen(state, taken, rng)) is not None:
                out.append(spec)
                taken.add(spec.arch_id)
            return out
        tree = state.tree
        counts, means = tree.stats(np.asarray(state.X), np.asarray(state.y))
        cp = self.options.cp * (max(state.y) - min(state.y))
        taken_codes: set[tuple[int, ...]] = set()
        while len(out) < n:
            _, path = tree.select(counts, means, cp, rng)
            codes = self.sample_region(tree, path, state, taken_codes, rng)
            spec = self.space.decode(codes) if codes is not None else self.enumerate_unseen(state, taken, rng)
            if spec is None:
                break
            out.append(spec)
            taken.add(spec.arch_id)
            taken_codes.add(tuple(int(c) for c in self.space.encode(spec)))
            for node, good in path:  # a visit without a score on the path
                counts[2 * node + (1 if good else 2)] += 1
            counts[0] += 1
        return out

    def sample_region(self, tree: Partition, path: Path, state: LaNASState, taken: set[tuple[int, ...]],
                      rng: np.random.Generator) -> np.ndarray | None:
        """An unseen uniform code vector in the region of ``path``, widening to the parents'
        regions when there is none; None when the whole space has none left."""
        if self.space.size <= self.enumerate_limit:
            return self._enumerated(tree, path, state, taken, rng)
        for depth in range(len(path), -1, -1):
            drawn = 0
            while drawn < self.options.rejection_draws:
                k = min(BATCH, self.options.rejection_draws - drawn)
                codes = self.space.sample_codes(rng, k)
                drawn += k
                inside = tree.inside(features(codes, self.cards, self.options.features), path[:depth])
                for row in codes[inside]:
                    key = tuple(int(c) for c in row)
                    if key not in state.seen_codes and key not in taken:
                        return row
        return None

    def _enumerated(self, tree: Partition, path: Path, state: LaNASState, taken: set[tuple[int, ...]],
                    rng: np.random.Generator) -> np.ndarray | None:
        """Exact uniform choice among the unseen networks of the region (the same distribution as
        rejection sampling, for a space small enough to hold every code vector)."""
        if self._all is None:
            grid = np.indices(self.cards).reshape(len(self.cards), -1).T  # row i = codes of index i
            self._all = (grid, features(grid, self.cards, self.options.features))
        grid, feats = self._all
        free = np.ones(len(grid), dtype=bool)
        used = list(state.seen_codes | taken)
        if used:
            free[np.ravel_multi_index(np.asarray(used).T, self.cards)] = False
        for depth in range(len(path), -1, -1):
            idx = np.flatnonzero(free & tree.inside(feats, path[:depth]))
            if len(idx):
                return grid[idx[int(rng.integers(len(idx)))]]
        return None
