"""Random search: uniform draws from the design space, never a candidate twice.

Each round draws its candidates with :meth:`SearchSpace.sample` (the population sampler's
uniform draws) from a generator seeded by ``(seed, round index)``, skipping candidates already
observed or drawn in the round. Scores are never read, so the round size changes only how the
draws are grouped (and hence which draws), not their distribution. Any generator can be searched
this way; one with an encoding is searched in canonical specs. When the space runs out of unseen
candidates the search ends early (spaces of up to 200,000 networks are enumerated first, so they
end only when exhausted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unnas.registry import STRATEGIES
from unnas.spec import ArchSpec
from unnas.strategies.common import BudgetOptions, ReplayStrategy, State


@dataclass(frozen=True)
class RandomOptions(BudgetOptions):
    pass


@STRATEGIES.register("random", config=RandomOptions)
class RandomSearch(ReplayStrategy):
    name = "random"
    options_class = RandomOptions
    needs_encoding = False

    def next_round(self, state: State, n: int, rng: np.random.Generator) -> list[ArchSpec]:
        out: list[ArchSpec] = []
        taken: set[str] = set()
        while len(out) < n:
            spec = self.draw_unseen(state, taken, rng)
            if spec is None:
                break
            out.append(spec)
            taken.add(spec.arch_id)
        return out
