"""The one job loop behind every strategy: ask for a round, evaluate it, repeat.

``drive(strategy, evaluate)`` is all of it. ``evaluate(round) -> observations`` decides how a
round is evaluated: the ranking and search runs run its jobs through an executor and the results
store (jobs that already have a row are not run again, so rerunning a killed search replays the
store and continues where it stopped); a published table can answer directly, as an oracle.

An ``evaluate`` whose scores are ranks among the candidates seen so far (a rank ensemble) has a
``rescore(history) -> history`` method: after every round the loop replaces the history by its
answer, so every observation the strategy compares is on the scale of the latest round.
"""

from __future__ import annotations

from typing import Callable, Sequence

from unnas.strategies.base import Observation, Proposal, Strategy

Evaluate = Callable[[list[Proposal]], list[Observation]]


def drive(strategy: Strategy, evaluate: Evaluate, max_rounds: int | None = None,
          on_round: Callable[[int, list[Observation]], None] | None = None) -> list[list[Observation]]:
    """Run ``strategy`` until it proposes an empty round (or ``max_rounds`` rounds); returns the
    observations of every round. ``evaluate`` must return one observation per proposal, in the
    proposals' order."""
    history: list[list[Observation]] = []
    while max_rounds is None or len(history) < max_rounds:
        proposals = strategy.propose(history)
        if not proposals:
            break
        observed = evaluate(list(proposals))
        if len(observed) != len(proposals):
            raise RuntimeError(f"evaluate returned {len(observed)} observations for {len(proposals)} proposals")
        history.append(list(observed))
        rescore = getattr(evaluate, "rescore", None)
        if rescore is not None:
            history = [list(r) for r in rescore(history)]
        if on_round is not None:
            on_round(len(history) - 1, history[-1])
    return history


def flatten(history: Sequence[Sequence[Observation]]) -> list[Observation]:
    return [o for round_ in history for o in round_]
