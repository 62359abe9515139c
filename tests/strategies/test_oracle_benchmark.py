"""The oracle benchmark runs end to end on NAS-Bench-Macro's table (skips without it)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT.parent / "shared" / "data" / "nas-bench-macro-cifar10.json"


def load():
    spec = importlib.util.spec_from_file_location("search_oracle", ROOT / "benchmarks" / "search_oracle.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_exact_median_of_random_search():
    mod = load()
    assert mod.random_search_median(10, 1) == 5  # P(miss in t) = (10 - t) / 10 <= 1/2 at t = 5
    assert mod.random_search_median(4, 2) == 1  # P(miss in 1) = 2 / 4
    assert mod.random_search_median(6561, 7) == 619  # a simulation of 20,000 permutations gives 622


def test_search_oracle_prints_one_json_line(capsys):
    if not TABLE.is_file():
        pytest.skip(f"NAS-Bench-Macro table not found at {TABLE}")
    mod = load()
    assert mod.main(["--table", str(TABLE), "--seeds", "2", "--cap", "150"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["space"] == 6561 and out["threshold"] == pytest.approx(0.9305666351)  # 7th best mean_acc
    assert out["hits"] == 7 and out["random_exact"] == {"median": 619, "mean": 820.25}
    for r in out["results"].values():
        assert len(r["runs"]) == 2 and all(1 <= n <= 151 for n in r["runs"])
        assert r["capped"] == sum(n == 151 for n in r["runs"])
