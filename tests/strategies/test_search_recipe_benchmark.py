"""The recipe-search benchmark: the percentile of a found network in a published table (hand-computed),
and the one JSON line it builds from the seeds' ``search.json`` (a stored seed is not run again)."""

from __future__ import annotations

import json

import pytest


def test_percentile_counts_lower_networks_and_half_the_ties(load_benchmark):
    mod = load_benchmark("search_recipe")
    table = {"a": 0.90, "b": 0.91, "c": 0.92, "d": 0.92, "e": 0.95}
    assert mod.percentile(table, "c") == {"published_acc": 0.92, "percentile": 100.0 * (2 + 0.5) / 4, "rank": 2}
    assert mod.percentile(table, "e")["percentile"] == 100.0 and mod.percentile(table, "a")["percentile"] == 0.0


def test_summary_of_stored_searches(tmp_path, capsys, monkeypatch, load_benchmark):
    mod = load_benchmark("search_recipe")
    table = tmp_path / "table.csv"
    table.write_text("structure,accuracy\n00000000,90\n11111111,91\n22222222,92\n12121212,92\n")
    for seed, found in ((1, "22222222"), (2, "11111111")):
        folder = tmp_path / "out" / f"lanas-seed{seed}"
        folder.mkdir(parents=True)
        (folder / "search.json").write_text(json.dumps({"best": {"structure": found}, "evaluated": 3,
                                                        "cpu_seconds": 7200.0, "wall_seconds": 30.0}))
    monkeypatch.setattr(mod.subprocess, "call", lambda *a, **k: pytest.fail("a stored seed ran again"))
    assert mod.main(["--seeds", "1,2", "--score", "naswot", "--reference", str(table), "--data", "fake",
                     "--out", str(tmp_path / "out")]) == 0
    line = json.loads(capsys.readouterr().out)
    assert [r["structure"] for r in line["runs"]] == ["22222222", "11111111"]
    assert [r["percentile"] for r in line["runs"]] == pytest.approx([100 * 2.5 / 3, 100 * 1 / 3])
    assert line["mean_published_acc"] == pytest.approx(0.915) and line["table_best"] == pytest.approx(0.92)
    assert line["max_search_cpu_hours"] == pytest.approx(2.0)
