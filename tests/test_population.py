"""Populations: determinism, distinctness, complexity control, the sample CLI."""

import csv

import numpy as np
import pytest

from unnas import sample
from unnas.cli import parse_count
from unnas.errors import UserError
from unnas.generators.complexity import complexity, count_params
from unnas.population import parse_generator, parse_params, parse_vary, sample_population
from unnas.spec import ArchSpec, build


def test_same_master_seed_same_population_and_all_distinct():
    a = sample_population("randwire-ws", 12, master_seed=3)
    b = sample_population("randwire-ws", 12, master_seed=3)
    c = sample_population("randwire-ws", 12, master_seed=4)
    assert a == b and a != c
    assert len({s.arch_id for s in a}) == 12
    assert all(s.generator == "randwire-ws" and s.seed > 0 for s in a)
    # the first candidates do not depend on how many are asked for
    assert sample_population("randwire-ws", 5, master_seed=3) == a[:5]


def test_base_params_stay_fixed():
    pop = sample_population("randwire-er", 6, 0, {"nodes": 6, "channels": 8})
    assert all(s.params["nodes"] == 6 and s.params["channels"] == 8 for s in pop)
    assert len({s.params["p"] for s in pop}) == 6


def test_duplicates_are_redrawn_and_exhaustion_is_reported():
    # a fixed NAS-Bench-201 cell ignores the seed: one distinct network only
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    one = sample_population("nb201", 1, 0, {"arch": arch})
    assert one == [ArchSpec("nb201", {"arch": arch, "width": 0.5, "cells": 1}, 0)]
    with pytest.raises(UserError, match="found 1 of 2"):
        sample_population("nb201", 2, 0, {"arch": arch})
    # a space of 5 widths x 1 depth has exactly 5 networks: all are found, none twice
    pop = sample_population("anynet", 5, 0, {"depths": [1, 1, 1], "bottleneck": [1, 1, 1], "groups": [1, 1, 1],
                                             "widths": [8, 8, 8]}, vary={"stem_width": [4, 8, 12, 16, 20]})
    assert sorted(s.params["stem_width"] for s in pop) == [4, 8, 12, 16, 20]
    assert all(s.seed == 0 for s in pop)


def test_seedless_generators_use_seed_zero():
    pop = sample_population("nb201", 30, 1)
    assert all(s.seed == 0 for s in pop)
    assert len({s.params["arch"] for s in pop}) == 30


def test_complexity_range_keeps_only_candidates_inside():
    lo, hi = 30_000, 60_000
    pop = sample_population("randwire-ws", 6, 0, params_range=(lo, hi))
    for s in pop:
        assert lo <= count_params(build(s, 3)) <= hi
    everything = sample_population("randwire-ws", 30, 0)
    inside = [s for s in everything if lo <= count_params(build(s, 3)) <= hi]
    assert pop == inside[:6]  # same stream of draws, filtered
    f = sample_population("macro", 4, 0, flops_range=(None, 3e6), in_channels=1, image_size=16)
    assert all(complexity(s, 1, 16)["flops"] <= 3e6 for s in f)


def test_empty_range_is_a_clear_user_error():
    with pytest.raises(UserError, match=r"params range \[1e\+09, inf\]; sampled params ranged over \["):
        sample_population("macro", 3, 0, params_range=(1e9, None), max_draws=20)
    with pytest.raises(UserError, match="empty range"):
        sample_population("macro", 3, 0, flops_range=(5, 1))
    with pytest.raises(UserError, match="non-negative"):
        sample_population("macro", 3, 0, params_range=(-1, 5))


def test_bad_inputs():
    with pytest.raises(UserError, match="unknown generator"):
        sample_population("nope", 2, 0)
    with pytest.raises(UserError, match="unknown parameter"):
        sample_population("macro", 2, 0, {"depth": 3})
    with pytest.raises(UserError, match="num-archs"):
        sample_population("macro", -1, 0)
    with pytest.raises(UserError, match="both fixed and varied"):
        sample_population("macro", 2, 0, {"width": 0.5}, vary={"width": [0.25]})


def test_timm_name_form():
    assert parse_generator("timm:resnet18") == ("timm", {"model": "resnet18"})
    assert parse_generator("nb201") == ("nb201", {})
    with pytest.raises(UserError):
        parse_generator("nb201:foo")
    (spec,) = sample_population("timm:resnet18", 1, 5)
    assert spec == ArchSpec("timm", {"model": "resnet18", "stem": "default", "img_size": 0}, 0)


def test_vary_draws_from_lists():
    pop = sample_population("nds-darts", 40, 0, vary={"width": [4, 6], "depth": [3, 4]})
    assert {(s.params["width"], s.params["depth"]) for s in pop} == {(4, 3), (4, 4), (6, 3), (6, 4)}


def test_sampling_uses_only_the_given_seed():
    state = np.random.get_state()[1].copy()
    sample_population("relational-mlp", 3, 0)
    assert (np.random.get_state()[1] == state).all()


# --------------------------------------------------------------------------------------- CLI
def test_cli_table_and_csv(tmp_path, capsys):
    out = tmp_path / "pop.csv"
    assert sample.main(["--generator", "randwire-ws", "-n", "3", "--params", "nodes=6", "channels=8",
                        "--out", str(out)]) == 0
    text = capsys.readouterr().out
    rows = list(csv.DictReader(open(out)))
    assert [r["arch_id"] for r in rows] == [s.arch_id for s in
                                            sample_population("randwire-ws", 3, 0, {"nodes": 6, "channels": 8})]
    assert {"params", "flops", "C", "L"} <= set(rows[0])
    for r in rows:
        assert r["arch_id"] in text and f"{int(r['params']):,}" in text
        spec = ArchSpec.from_json(f'{{"generator": "randwire-ws", "params": {r["params_json"]}, "seed": {r["seed"]}}}')
        assert complexity(spec, 3, 32) == {"params": int(r["params"]), "flops": int(r["flops"]),
                                           "macs": int(r["flops"]) // 2}


@pytest.mark.parametrize("argv,pattern", [
    (["--generator", "nope", "-n", "2"], "unknown generator"),
    (["--generator", "macro", "-n", "x"], "invalid int"),
    (["--generator", "macro", "--params", "width"], "K=V"),
    (["--generator", "macro", "--max-params", "many"], "--max-params"),
    (["--generator", "macro", "-n", "2", "--min-params", "1e9", "--max-draws", "5"], "params range"),
    (["--generator", "nb201", "--params", "arch=bad"], "arch"),
])
def test_cli_bad_input_is_one_line_and_exit_2(argv, pattern, capsys):
    with pytest.raises(SystemExit) as e:
        raise SystemExit(sample.main(argv))
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and pattern in err


def test_cli_value_parsing():
    assert parse_params(["a=3", "b=0.5", "c=[1,2]", "d=resnet18", "e=1e-3", "f=[a, b]", "g=x: [", "h=true"]) == \
        {"a": 3, "b": 0.5, "c": [1, 2], "d": "resnet18", "e": 0.001, "f": ["a", "b"], "g": "x: [", "h": True}
    assert [parse_count(t) for t in ("300M", "1.5G", "20k", "7", "2e3")] == [3e8, 1.5e9, 2e4, 7.0, 2e3]
    for bad in ("-1", "x", "inf", "nan", "3X", ""):
        with pytest.raises(ValueError):
            parse_count(bad)
    assert parse_vary(["w=4,8", "d=[1,2]"]) == {"w": [4, 8], "d": [1, 2]}
