"""Regularized evolution (Real, Aggarwal, Huang, Le 2019, "Regularized Evolution for Image
Classifier Architecture Search", Algorithm 1), on a generator's integer encoding.

* **Warm-up**: uniform random candidates until ``population`` of them have a score.
* **Cycle**: a tournament draws ``tournament`` distinct members of the population uniformly; the
  best (highest score; the first drawn among equals) is the parent; the child copies the parent's
  code vector and changes one position (uniform among the positions with more than one value) to
  a different value (uniform among the others).
* **Aging**: the population is always the ``population`` most recently scored candidates, so
  adding a child removes the oldest member, whatever its score.

Defaults are the paper's (P = 100, S = 25). A failed job (no score) never joins the population.
A child already observed (or proposed in the same round) is not evaluated again: the mutation is
redrawn (up to 64 times per parent), then the tournament (up to 8 times), then the child is a
uniform unseen candidate.

Rounds: every child of a round comes from its own tournament on the population as it stood at
the start of the round; the whole round then joins the population (the oldest leave). With
``round_size=1`` this is the sequential algorithm exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unnas.registry import STRATEGIES
from unnas.spec import ArchSpec
from unnas.strategies.common import BudgetOptions, ReplayStrategy, State, is_int, require

MUTATION_TRIES = 64
TOURNAMENT_TRIES = 8


@dataclass(frozen=True)
class EvolutionOptions(BudgetOptions):
    population: int = 100  # P: the population size (and the random warm-up)
    tournament: int = 25  # S: members drawn per tournament


@STRATEGIES.register("evolution", config=EvolutionOptions)
class RegularizedEvolution(ReplayStrategy):
    name = "evolution"
    options_class = EvolutionOptions

    def check(self, o: EvolutionOptions) -> None:
        super().check(o)
        require(self.name, "population", o.population, is_int(o.population) and o.population >= 2,
                "an integer >= 2")
        require(self.name, "tournament", o.tournament, is_int(o.tournament) and 1 <= o.tournament <= o.population,
                f"an integer in 1..population ({o.population})")

    def population(self, state: State) -> list[tuple[np.ndarray, float]]:
        """The current population, oldest first: (codes, score) of the last P scored candidates."""
        return [(np.asarray(c, dtype=np.int64), y) for c, y in state.scored[-self.options.population:]]

    def tournament(self, population: list[tuple[np.ndarray, float]], rng: np.random.Generator) -> np.ndarray:
        """The parent's codes: the best of S distinct members drawn uniformly."""
        picks = rng.choice(len(population), size=self.options.tournament, replace=False)
        best = int(picks[0])
        for i in picks[1:]:
            if population[i][1] > population[best][1]:
                best = int(i)
        return population[best][0]

    def mutate(self, codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One position (among those with more than one value) set to a different value."""
        mutable = [i for i, c in enumerate(self.cards) if c > 1]
        child = codes.copy()
        pos = mutable[int(rng.integers(len(mutable)))]
        child[pos] = (codes[pos] + 1 + int(rng.integers(self.cards[pos] - 1))) % self.cards[pos]
        return child

    def next_round(self, state: State, n: int, rng: np.random.Generator) -> list[ArchSpec]:
        out: list[ArchSpec] = []
        taken: set[str] = set()
        warmup = len(state.scored) < self.options.population
        if warmup:  # a warm-up round holds random candidates only
            n = min(n, self.options.population - len(state.scored))
        population = self.population(state)
        while len(out) < n:
            spec = self.draw_unseen(state, taken, rng) if warmup else self.child(state, population, taken, rng)
            if spec is None:
                break
            out.append(spec)
            taken.add(spec.arch_id)
        return out

    def child(self, state: State, population, taken: set[str], rng: np.random.Generator) -> ArchSpec | None:
        if any(c > 1 for c in self.cards):
            for _ in range(TOURNAMENT_TRIES):
                parent = self.tournament(population, rng)
                for _ in range(MUTATION_TRIES):
                    codes = self.mutate(parent, rng)
                    if tuple(int(c) for c in codes) in state.seen_codes:
                        continue
                    spec = self.space.decode(codes)
                    if spec.arch_id not in taken and spec.arch_id not in state.seen:
                        return spec
        return self.draw_unseen(state, taken, rng)
