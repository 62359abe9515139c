"""What the registered strategies share: the budget options, option checks, the replay of the
observed rounds into a strategy's state, and uniform draws of unseen candidates.

**Rounds and budget.** ``samples`` candidates are evaluated in all (a failed job counts: it cost
a job); proposals come in rounds of ``round_size`` (the last round may be shorter). With
``round_size=1`` every sequential algorithm is exact: each proposal sees every earlier score.
With larger rounds the executors run a round's jobs in parallel, and each strategy says what a
round means for it (its module docstring). ``round_size=0`` (the default) means one proposal per
worker of the run: a search resolves it from its executor layout before anything is written
(:func:`unnas.search_run.resolve_round_size`), so its saved config records the number; a strategy
used on its own reads 0 as 1. The proposals depend on the number of workers through the round
size only: give ``round_size`` to get the same proposals on any number of workers.

**Determinism.** :meth:`ReplayStrategy.propose` folds the observed rounds into a state
(:meth:`ReplayStrategy.absorb`) and draws the next round with a generator seeded by
``(seed, round index)`` only, so the answer for a history is a pure function of it and the seed:
replaying a stored history reproduces every round. The fold is cached and extended when the next
call's history extends the cached one (the rounds are compared), else rebuilt.

**No candidate twice.** A strategy never proposes a spec it has observed, nor one spec twice in
a round. With an encoding, every spec a strategy proposes is canonical
(:meth:`SearchSpace.canonical`): one network, one ``arch_id``.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from unnas.errors import UserError
from unnas.spec import ArchSpec
from unnas.strategies.base import Observation, Proposal, SearchSpace, Strategy

ENUMERATE_LIMIT = 200_000  # spaces up to this size are enumerated once uniform draws stop finding new candidates


@dataclass(frozen=True)
class BudgetOptions:
    samples: int = 100  # candidates evaluated in all (failed jobs count)
    round_size: int = 0  # proposals per round (0: one per worker of the run; 1: the sequential algorithm, exactly)


def require(strategy: str, key: str, value: Any, ok: bool, allowed: str) -> None:
    if not ok:
        raise UserError(f"{strategy}.{key}", value, allowed)


def is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def coerce_options(strategy: str, cls: type, options: Any) -> Any:
    """``options`` as an instance of ``cls``: None gives the defaults; a mapping is read by field
    name (an unknown key is an error); an instance of another class is refused."""
    if options is None:
        return cls()
    if isinstance(options, cls):
        return options
    if isinstance(options, Mapping):
        names = [f.name for f in dataclasses.fields(cls)]
        for key in options:
            if key not in names:
                raise UserError(f"{strategy} option", key, names, message=f"unknown option {key!r}")
        return cls(**options)
    raise UserError(f"{strategy} options", type(options).__name__, f"{cls.__name__} or a mapping of its fields")


def _same_round(a: Sequence[Observation], b: Sequence[Observation]) -> bool:
    """Whether two rounds hold the same observations, as far as a strategy reads them (spec, rung,
    status, score; nan equals nan)."""
    return len(a) == len(b) and all(
        x is y or (x.spec == y.spec and x.rung == y.rung and x.status == y.status
                   and (x.score == y.score or (math.isnan(x.score) and math.isnan(y.score)))) for x, y in zip(a, b))


@dataclass
class State:
    """What every replayed strategy knows: the observations in order and the specs seen."""

    observations: list[Observation] = field(default_factory=list)
    codes: list[tuple[int, ...] | None] = field(default_factory=list)  # each observation's encoding
    seen: set[str] = field(default_factory=set)  # arch_ids
    seen_codes: set[tuple[int, ...]] = field(default_factory=set)  # with an encoding
    scored: list[tuple[tuple[int, ...], float]] = field(default_factory=list)  # (codes, score) of the ok ones

    @property
    def count(self) -> int:
        return len(self.observations)


class ReplayStrategy(Strategy):
    """A strategy whose state is a fold over the observed rounds (see the module docstring).

    Subclasses set ``options_class`` (a frozen dataclass deriving from :class:`BudgetOptions`)
    and implement :meth:`next_round`; they set ``state_class`` (deriving from :class:`State`) and
    extend :meth:`absorb` and :meth:`check` when they keep more state or options."""

    options_class: type = BudgetOptions
    state_class: type = State
    needs_encoding: bool = True

    def __init__(self, space: SearchSpace, options: Any = None, seed: int = 0):
        if not is_int(seed) or seed < 0:
            raise UserError("--seed", seed, "a non-negative integer")
        super().__init__(space, coerce_options(self.name, self.options_class, options), int(seed))
        self.check(self.options)
        if self.needs_encoding:
            self.cards = space.cardinalities  # a generator without an encoding fails here
        self._cache: tuple[list[tuple[Observation, ...]], State] | None = None

    # ---- options
    def check(self, o: Any) -> None:
        require(self.name, "samples", o.samples, is_int(o.samples) and o.samples >= 1, "an integer >= 1")
        require(self.name, "round_size", o.round_size, is_int(o.round_size) and o.round_size >= 0,
                "an integer >= 0 (0: one proposal per worker)")

    # ---- the fold
    def new_state(self) -> State:
        return self.state_class()

    def absorb(self, state: State, observations: Sequence[Observation]) -> None:
        """Add one round's observations to ``state`` (subclasses extend, calling this first)."""
        for o in observations:
            codes = None
            if self.space.searchable and o.spec.generator == self.space.generator:
                codes = tuple(int(c) for c in self.space.encode(o.spec))
                state.seen_codes.add(codes)
            state.observations.append(o)
            state.codes.append(codes)
            state.seen.add(o.spec.arch_id)
            if o.ok and codes is not None:
                state.scored.append((codes, float(o.score)))

    def state_for(self, history: Sequence[Sequence[Observation]]) -> State:
        """The state after folding ``history`` (the cached fold when ``history`` extends it)."""
        if self._cache is not None:
            rounds, state = self._cache
            if not (len(rounds) <= len(history) and all(_same_round(h, r) for h, r in zip(history, rounds))):
                self._cache = None
        if self._cache is None:
            self._cache = ([], self.new_state())
        rounds, state = self._cache
        for h in history[len(rounds):]:
            rounds.append(tuple(h))
            self.absorb(state, rounds[-1])
        return state

    def propose(self, history: Sequence[Sequence[Observation]]) -> list[Proposal]:
        state = self.state_for(history)
        n = min(self.options.round_size or 1, self.options.samples - state.count)
        if n <= 0:
            return []
        rng = np.random.default_rng([self.seed, len(history)])
        return [Proposal(spec) for spec in self.next_round(state, n, rng)]

    def next_round(self, state: State, n: int, rng: np.random.Generator) -> list[ArchSpec]:  # pragma: no cover
        """Up to ``n`` new specs (fewer only when the space has no more unseen candidates). Must
        not change ``state``."""
        raise TypeError(f"strategy {self.name} does not define next_round")

    # ---- uniform draws of unseen candidates
    def draw_unseen(self, state: State, taken: set[str], rng: np.random.Generator,
                    tries: int = 1000) -> ArchSpec | None:
        """A uniform draw (:meth:`SearchSpace.sample`, canonical) not seen and not in ``taken``
        (arch_ids proposed earlier in this round). After ``tries`` draws that all hit seen
        candidates, a space of at most :data:`ENUMERATE_LIMIT` networks is enumerated and an unseen
        one chosen uniformly; None when there is none (or the space is too large to enumerate)."""
        for _ in range(tries):
            spec = self.space.canonical(self.space.sample(rng))
            if spec.arch_id not in state.seen and spec.arch_id not in taken:
                return spec
        return self.enumerate_unseen(state, taken, rng)

    def enumerate_unseen(self, state: State, taken: set[str], rng: np.random.Generator) -> ArchSpec | None:
        if not self.space.searchable or self.space.size > ENUMERATE_LIMIT:
            return None
        free = []
        for codes in itertools.product(*(range(c) for c in self.space.cardinalities)):
            if codes not in state.seen_codes:
                spec = self.space.decode(codes)
                if spec.arch_id not in taken and spec.arch_id not in state.seen:
                    free.append(spec)
        return free[int(rng.integers(len(free)))] if free else None
