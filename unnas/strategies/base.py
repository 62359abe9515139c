"""The strategy contract: a strategy proposes candidates in rounds, from what it has observed.

A *round* is a list of :class:`Proposal` (a spec at a fidelity rung). The job loop runs every
proposal of a round (through the same executors and the same store as ``unnas.rank``), turns the
finished rows into :class:`Observation` (in the round's proposal order, whatever order the jobs
finished in) and asks for the next round. A strategy is a pure function of the observations of
the earlier rounds and its own seed: replaying the store therefore reproduces every proposal, so a
killed search resumes exactly where the uninterrupted one would be, without running any candidate
twice. An empty round ends the search.

* :class:`SearchSpace` is what strategies see of a generator: uniform draws (the same draws as
  ``unnas.population.sample_population``) and, for generators that can be searched, an integer
  encoding (``Generator.encode(params, seed=0) -> list[int]``, ``Generator.decode(codes, base) ->
  params``, ``Generator.cardinalities(base) -> list[int]``: position ``i`` takes values
  ``0..card[i]-1``; see :mod:`unnas.generators.encoding`). The seed matters to ``encode`` only
  when the parameters leave the structure to it (``arch=""``, an empty genotype).
* Scores are "higher is better"; a failed or diverged job is observed with ``score = nan``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from unnas.errors import UserError
from unnas.spec import ArchSpec, get_generator


@dataclass(frozen=True)
class Proposal:
    """Run ``spec`` at fidelity ``rung`` (an index into the run's budget ladder; 0 for a fixed budget)."""

    spec: ArchSpec
    rung: int = 0


@dataclass(frozen=True)
class Observation:
    """What the loop learned of one proposal: its label-free score (nan when its job did not finish)."""

    spec: ArchSpec
    rung: int
    score: float
    status: str = "done"
    metrics: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "done" and not math.isnan(self.score)


class SearchSpace:
    """A generator with fixed base parameters, as strategies see it."""

    def __init__(self, generator: str, base_params: Mapping[str, Any] | None = None):
        self.generator = generator
        self.gen = get_generator(generator)
        self.base = dict(base_params or {})
        self.gen.resolve(self.base)  # unknown or mistyped parameters fail here
        self._cards: list[int] | None = None

    # ---- uniform draws (the population sampler's sequence)
    def sample(self, rng: np.random.Generator) -> ArchSpec:
        from unnas.population import uses_seed

        params = self.gen.sample_params(rng, dict(self.base))
        seed = int(rng.integers(2 ** 31))
        return ArchSpec(self.generator, params, seed if uses_seed(self.gen, params) else 0)

    # ---- integer encodings (generators that can be searched)
    @property
    def searchable(self) -> bool:
        return all(hasattr(self.gen, a) for a in ("encode", "decode", "cardinalities"))

    def _need_encoding(self) -> None:
        if not self.searchable:
            raise UserError("--generator", self.generator, "a generator with an encoding",
                            message=f"generator {self.generator} cannot be searched (it has no encoding)")

    @property
    def cardinalities(self) -> list[int]:
        self._need_encoding()
        if self._cards is None:
            self._cards = [int(c) for c in self.gen.cardinalities(self.base)]
        return list(self._cards)

    @property
    def size(self) -> int:
        """How many networks the encoding names (the product of the cardinalities)."""
        return math.prod(self.cardinalities)

    def encode(self, spec: ArchSpec) -> np.ndarray:
        self._need_encoding()
        return np.asarray(self.gen.encode(self.gen.resolve(spec.params), spec.seed), dtype=np.int64)

    def decode(self, codes: Sequence[int]) -> ArchSpec:
        self._need_encoding()
        return ArchSpec(self.generator, self.gen.resolve(self.gen.decode([int(c) for c in codes], dict(self.base))), 0)

    def canonical(self, spec: ArchSpec) -> ArchSpec:
        """The spec every strategy uses for ``spec``'s network: ``decode(encode(spec))`` when the
        generator has an encoding (a seed-drawn cell becomes its explicit genotype, so one network
        has one ``arch_id``), else ``spec`` itself."""
        return self.decode(self.encode(spec)) if self.searchable else spec

    def sample_codes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` uniform code vectors (rows). Every encoding is a bijection onto its networks, so
        these are uniform networks: for the generators here the distribution of :meth:`sample`."""
        cards = np.asarray(self.cardinalities, dtype=np.int64)
        return rng.integers(0, cards, size=(n, len(cards)))


class Strategy:
    """Base class. Subclasses set ``name`` and implement :meth:`propose`.

    ``options`` is the strategy's option dataclass (registered with ``STRATEGIES.register(name,
    config=Cls)``), ``seed`` the search seed. :meth:`propose` must not keep hidden state between
    calls that the observations do not determine: it may cache, but its answer for a given
    ``history`` is always the same.
    """

    name: str = ""

    def __init__(self, space: SearchSpace, options: Any = None, seed: int = 0):
        self.space = space
        self.options = options
        self.seed = int(seed)

    def propose(self, history: Sequence[Sequence[Observation]]) -> list[Proposal]:  # pragma: no cover
        """The next round, given ``history[r]`` = the observations of round ``r`` (in that round's
        proposal order). ``[]`` ends the search."""
        raise TypeError(f"strategy {self.name} does not define propose")
