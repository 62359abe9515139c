"""Rank aggregation rules (unnas.eval.aggregate): hand-computed values, parsing and names."""

import math

import numpy as np
import pytest
from unnas.eval.aggregate import RULES, Ensemble, as_ensemble, parse

from unnas.errors import UserError
from unnas.scores import ensemble_name, parse_ensemble


def test_mean_and_logrank_by_hand():
    a, b = np.array([10.0, 20.0, 30.0, 40.0]), np.array([4.0, 3.0, 2.0, 1.0])  # ranks 1..4 and 4..1
    assert list(Ensemble(("a", "b")).combine([a, b])) == [2.5, 2.5, 2.5, 2.5]  # the mean cannot tell them apart
    got = Ensemble(("a", "b"), "logrank").combine([a, b])
    want = [math.log(1 / 4) + math.log(4 / 4), math.log(2 / 4) + math.log(3 / 4),
            math.log(3 / 4) + math.log(2 / 4), math.log(4 / 4) + math.log(1 / 4)]
    assert list(got) == pytest.approx(want)
    assert got[1] > got[0]  # a candidate in the middle of both beats one at the bottom of either


def test_ties_take_average_ranks_and_missing_parts_give_nan():
    a, b = np.array([1.0, 1.0, 3.0, math.nan]), np.array([1.0, 2.0, 3.0, 4.0])
    got = Ensemble(("a", "b"), "logrank").combine([a, b])  # ranks among the first three: a 1.5, 1.5, 3; b 1, 2, 3
    assert list(got[:3]) == pytest.approx([math.log(1.5 / 3) + math.log(1 / 3), math.log(1.5 / 3) + math.log(2 / 3), 0.0])
    assert math.isnan(got[3])
    assert np.isnan(Ensemble(("a", "b")).combine([np.full(2, math.nan), np.ones(2)])).all()


def test_parse_names_and_text_round_trip():
    e = parse("logrank: az_expressivity, flops")
    assert e == Ensemble(("az_expressivity", "flops"), "logrank") and list(e) == ["az_expressivity", "flops"]
    assert e.name == "ensemble[logrank](az_expressivity+flops)" and parse(e.text) == e
    assert parse("rotation,flops") == Ensemble(("rotation", "flops"), "mean")
    assert ensemble_name(["rotation", "flops"]) == "ensemble(rotation+flops)"  # the mean rule keeps its old name
    assert ensemble_name(parse_ensemble("logrank:a,b")) == "ensemble[logrank](a+b)"
    assert as_ensemble(e) is e and as_ensemble("a,b") == Ensemble(("a", "b"))
    assert RULES.names() == ["logrank", "mean"]


def test_an_unknown_rule_is_refused_naming_the_rules():
    with pytest.raises(UserError, match="--ensemble rule: invalid value .geomean.; allowed: logrank, mean"):
        parse("geomean:a,b")
    with pytest.raises(UserError, match="unknown rank aggregation rule"):
        Ensemble(("a", "b"), "nope")


def test_a_minus_infinite_part_ranks_its_candidate_last_instead_of_dropping_it():
    a = np.array([3.0, 1.0, -np.inf, 2.0])
    b = np.array([1.0, 2.0, 3.0, np.nan])
    out = parse("a,b").combine([a, b])
    # among the three with both parts: ranks a -> (3, 2, 1), b -> (1, 2, 3); mean (2, 2, 2); the fourth misses b
    np.testing.assert_allclose(out[:3], [2.0, 2.0, 2.0])
    assert np.isnan(out[3])
    worst = parse("a,b").combine([a, np.array([1.0, 2.0, 0.5, 0.0])])
    assert worst[2] == worst.min()  # -inf and the lowest b: last
