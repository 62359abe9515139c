"""The oracle benchmark runs end to end on NAS-Bench-Macro's table (skips without it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT.parent / "shared" / "data" / "nas-bench-macro-cifar10.json"


def test_exact_median_of_random_search(load_benchmark):
    mod = load_benchmark("search_oracle")
    assert mod.random_search_median(10, 1) == 5  # P(miss in t) = (10 - t) / 10 <= 1/2 at t = 5
    assert mod.random_search_median(4, 2) == 1  # P(miss in 1) = 2 / 4
    assert mod.random_search_median(6561, 7) == 619  # a simulation of 20,000 permutations gives 622


def test_search_oracle_prints_one_json_line(capsys, load_benchmark):
    if not TABLE.is_file():
        pytest.skip(f"NAS-Bench-Macro table not found at {TABLE}")
    mod = load_benchmark("search_oracle")
    assert mod.main(["--table", str(TABLE), "--seeds", "2", "--cap", "150"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["space"] == 6561 and out["threshold"] == pytest.approx(0.9305666351)  # 7th best mean_acc
    assert out["hits"] == 7 and out["random_exact"] == {"median": 619, "mean": 820.25}
    for r in out["results"].values():
        assert len(r["runs"]) == 2 and all(1 <= n <= 151 for n in r["runs"])
        assert r["capped"] == sum(n == 151 for n in r["runs"])
