"""Label-free rank aggregation: how an ensemble turns its parts' columns into one ranking.

An *ensemble* is a rule and two or more label-free score columns (objectives, proxies, ``params``,
``flops``); it uses only the parts' ranks among the candidates that have every part (average ranks
for ties, rank 1 the lowest score), so no weight is learned and no label is read. Written on the
command line as ``[RULE:]PART,PART[,...]`` (``--ensemble logrank:az_expressivity,flops``); its
column is named ``ensemble(a+b)`` for the mean rule and ``ensemble[RULE](a+b)`` otherwise, and
``ranking.json`` records the rule beside the parts.

Rules (:data:`RULES`), higher is better for each:

* ``mean``: the mean rank (a Borda count), the default: one part's extreme rank can be outvoted.
* ``logrank``: ``sum log(rank / n)``, AZ-NAS's non-linear aggregation (Lee & Ham, CVPR 2024): the
  log punishes a candidate that any part ranks near the bottom far more than the mean does, so a
  candidate must be good on every part; equivalently the geometric mean of the ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
from scipy.stats import rankdata

from unnas.errors import UserError
from unnas.registry import Registry

RULES = Registry("rank aggregation rule")
DEFAULT_RULE = "mean"


@RULES.register("mean")
def mean_rank(ranks: np.ndarray) -> np.ndarray:
    """``(parts, n)`` ranks -> the mean rank of each candidate."""
    return ranks.mean(axis=0)


@RULES.register("logrank")
def log_rank(ranks: np.ndarray) -> np.ndarray:
    """``(parts, n)`` ranks -> ``sum log(rank / n)`` (AZ-NAS)."""
    return np.log(ranks / ranks.shape[1]).sum(axis=0)


@dataclass(frozen=True)
class Ensemble:
    """A rule over named parts; iterating it yields the parts."""

    parts: tuple[str, ...]
    rule: str = DEFAULT_RULE

    def __post_init__(self):
        RULES.get(self.rule)  # unknown rule -> UserError listing the rules

    def __iter__(self) -> Iterator[str]:
        return iter(self.parts)

    def __len__(self) -> int:
        return len(self.parts)

    @property
    def name(self) -> str:
        rule = "" if self.rule == DEFAULT_RULE else f"[{self.rule}]"
        return f"ensemble{rule}(" + "+".join(self.parts) + ")"

    @property
    def text(self) -> str:
        """The command-line form (``RULE:a,b``), which :func:`parse` reads back."""
        return f"{self.rule}:" + ",".join(self.parts)

    def combine(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble's value per candidate from its parts' columns (aligned, NaN where missing):
        the rule over the parts' ranks among the candidates that have every part; NaN elsewhere. A
        part's ``-inf`` (a non-finite proxy value, ranked last) takes that part's lowest rank."""
        stack = np.vstack([np.asarray(c, dtype=float) for c in columns])
        ok = ~np.isnan(stack).any(axis=0)
        out = np.full(stack.shape[1], np.nan)
        if ok.any():
            out[ok] = RULES.get(self.rule)(np.vstack([rankdata(c[ok]) for c in stack]))
        return out


def parse(text: str) -> Ensemble:
    """``"[RULE:]a,b,..."`` -> :class:`Ensemble` (rule ``mean`` when none is given)."""
    text = str(text)
    rule, sep, rest = text.partition(":")
    if not sep:
        rule, rest = DEFAULT_RULE, text
    rule = rule.strip()
    if rule not in RULES:
        raise UserError("--ensemble rule", rule, RULES.names())
    return Ensemble(tuple(p.strip() for p in rest.split(",") if p.strip()), rule)


def as_ensemble(parts: Ensemble | str | Iterable[str]) -> Ensemble:
    """An :class:`Ensemble` from itself, its text, or plain parts (the mean rule)."""
    if isinstance(parts, Ensemble):
        return parts
    if isinstance(parts, str):
        return parse(parts)
    return Ensemble(tuple(parts))
