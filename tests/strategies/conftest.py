"""A toy searchable generator (never built): a code vector over ``cards``, so strategy tests can
score candidates with a known function of the codes and exhaust tiny spaces."""

from __future__ import annotations

import math

import numpy as np
import pytest

from unnas.registry import GENERATORS
from unnas.spec import Generator
from unnas.strategies.base import Observation, SearchSpace


class ToyGrid(Generator):
    name = "toy-grid"
    defaults = {"codes": [], "cards": [2, 2, 2]}

    def sample_params(self, rng, base=None):
        base = self.resolve(base)
        return self.resolve({**base, "codes": [int(rng.integers(c)) for c in base["cards"]]})

    def uses_seed(self, params):
        return False

    def cardinalities(self, base=None):
        return list(self.resolve(base)["cards"])

    def encode(self, params, seed=0):
        return list(params["codes"])

    def decode(self, codes, base=None):
        return self.resolve({**(base or {}), "codes": [int(c) for c in codes]})


if "toy-grid" not in GENERATORS:
    GENERATORS.add("toy-grid", ToyGrid)


def toy_space(cards) -> SearchSpace:
    return SearchSpace("toy-grid", {"cards": list(cards)})


def linear_oracle(weights, fail=frozenset()):
    """evaluate(): score = weights . codes; codes in ``fail`` fail (nan). Counts evaluations."""
    calls: dict[str, int] = {}

    def evaluate(proposals):
        out = []
        for p in proposals:
            codes = tuple(p.spec.params["codes"])
            calls[p.spec.arch_id] = calls.get(p.spec.arch_id, 0) + 1
            if codes in fail:
                out.append(Observation(p.spec, p.rung, math.nan, status="failed"))
            else:
                out.append(Observation(p.spec, p.rung, float(np.dot(weights, codes))))
        return out

    evaluate.calls = calls
    return evaluate


@pytest.fixture
def toy():
    """``toy(cards)``: the toy space over ``cards``."""
    return toy_space


@pytest.fixture
def oracle():
    """``oracle(weights, fail=())``: a linear evaluate() on the toy space."""
    return linear_oracle
