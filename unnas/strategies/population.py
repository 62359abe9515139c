"""Strategies over a fixed population: the ranking run's own two.

* ``fixed``: every candidate once, at the full budget (one round): what ``unnas.rank`` does.
* ``sh``: successive halving (Jamieson & Talwalkar 2016; Li et al. 2017): round ``k`` runs its
  candidates up to rung ``k``'s epochs; the best ``ceil(n_k / eta)`` by the label-free score (ties:
  the lower ``arch_id``; candidates whose job did not finish never continue) go on to rung ``k + 1``,
  continuing from their own checkpoints. One round per rung. *Proxy-first*: a first rung of 0
  epochs trains nothing; its candidates are ranked by their zero-cost proxies
  (:class:`unnas.rounds.RoundRunner`), and only the survivors train.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from unnas.errors import UserError
from unnas.registry import STRATEGIES
from unnas.spec import ArchSpec
from unnas.strategies.base import Observation, Proposal, Strategy


@dataclass(frozen=True)
class PopulationOptions:
    specs: tuple[ArchSpec, ...] = ()
    rungs: tuple[int, ...] = ()  # sh: epochs per rung (increasing)
    eta: int = 3


def sh_rungs(rungs: Sequence[int], epochs: int, eta: int) -> list[int]:
    """Rungs in epochs: the given list (strictly increasing; positive, except a first rung of 0
    epochs: the training-free rung of proxy-first halving, then at least one rung that trains), or
    ``epochs / eta^k`` for k = ..., 2, 1, 0 down to one epoch (``epochs=9, eta=3`` -> ``[1, 3, 9]``)."""
    if not isinstance(eta, int) or isinstance(eta, bool) or eta < 2:
        raise UserError("budget.eta", eta, "an integer >= 2")
    if rungs:
        r = [int(x) for x in rungs]
        if any(x < 0 for x in r) or any(b <= a for a, b in zip(r, r[1:])) or r[-1] == 0:
            raise UserError("budget.rungs", list(rungs), "strictly increasing epoch counts, e.g. [1, 3, 9], or [0, 1, 3] "
                            "(rung 0 runs the proxies only)")
        return r
    if epochs < 1:
        raise UserError("--epochs", epochs, "at least 1 epoch for successive halving (rungs are in epochs)")
    out = [epochs]
    while out[0] // eta >= 1 and out[0] // eta < out[0]:
        out.insert(0, out[0] // eta)
    return sorted(set(out))


def check_halving(rungs: Sequence[int], *, proxies: Sequence[str], checkpoint: bool) -> None:
    """What successive halving over ``rungs`` needs: proxies to rank a training-free rung 0, and
    checkpoints when a candidate continues from one trained rung to the next."""
    if rungs[0] == 0 and not proxies:
        raise UserError("budget.rungs", list(rungs), "a first rung above 0, or proxies (--proxies) to rank rung 0",
                        message="rung 0 of 0 epochs ranks the candidates by their proxies, and the run has none")
    if not checkpoint and sum(r > 0 for r in rungs) > 1:
        raise UserError("train.checkpoint", checkpoint, "true with --budget sh",
                        message="successive halving continues each promoted candidate from its checkpoint of the "
                                "rung before; train.checkpoint=false would retrain it from scratch")


@STRATEGIES.register("fixed")
class FixedPopulation(Strategy):
    name = "fixed"

    def propose(self, history: Sequence[Sequence[Observation]]) -> list[Proposal]:
        return [Proposal(s, 0) for s in self.options.specs] if not history else []


@STRATEGIES.register("sh")
class SuccessiveHalving(Strategy):
    name = "sh"

    def propose(self, history: Sequence[Sequence[Observation]]) -> list[Proposal]:
        k = len(history)
        rungs = self.options.rungs
        if k == 0:
            return [Proposal(s, 0) for s in self.options.specs]
        if k >= len(rungs):
            return []
        last = history[-1]
        keep = math.ceil(len(last) / self.options.eta)
        ok = sorted((o for o in last if o.ok), key=lambda o: (-o.score, o.spec.arch_id))
        return [Proposal(o.spec, k) for o in ok[:keep]]
