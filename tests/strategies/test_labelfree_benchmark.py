"""The label-free search benchmark: every part's configuration is a valid search with a CPU-clock
budget, and its summary (published accuracy and percentile of what each part found) is computed
from the parts already run (skips without ../shared/data)."""

from __future__ import annotations

import json

import pytest

from unnas import config


@pytest.mark.parametrize("part,strategy,score", [("lanas", "lanas", "swap"), ("evolution", "evolution", "swap"),
                                                 ("random", "random", "swap"), ("supervised", "lanas", "supervised")])
def test_every_strategy_part_is_a_search_under_one_cpu_budget(tmp_path, part, strategy, score, load_benchmark):
    mod = load_benchmark("search_labelfree")
    args = {"seed": 3, "budget": 42.0, "score": "swap", "score_is_proxy": True, "tree": str(tmp_path),
            "out": str(tmp_path)}
    cfg = config.load(None, mod.strategy_overrides(part, args))
    s = cfg.search
    assert (s.strategy, s.score, s.time_budget, s.clock, s.method) == (strategy, score, 42.0, "cpu", "")
    assert cfg.run.master_seed == 3 and cfg.model.generator == "macro" and cfg.run.executor == "local"
    assert cfg.run.proxies == ("swap" if score == "swap" else "") and cfg.run.pretext == "none"
    assert cfg.model.params["width"] == (1.0 if score == "swap" else 0.5)
    assert cfg.objectives[strategy].samples == 6561  # the budget ends the search, not the sample count


def test_summary_from_stored_parts(tmp_path, capsys, load_benchmark):
    mod = load_benchmark("search_labelfree")
    if not mod.TABLE.is_file() or mod.cifar10_tree_or_none() is None:
        pytest.skip("needs ../shared/data")
    parts = {"lanas": "22222222", "random": "00000000"}
    with open(tmp_path / "parts.jsonl", "w") as f:
        for name, arch in parts.items():
            f.write(json.dumps({"part": name, "arch": arch, "samples": 3, "cpu_seconds": 1.0}) + "\n")
    out = mod.main(["--parts", "lanas,random", "--out", str(tmp_path)])  # both already there: nothing runs
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out
    table = mod.load_table()
    for name, arch in parts.items():
        r = out["results"][name]
        assert r["published_acc"] == table[arch]
        assert r["percentile"] == pytest.approx(100 * (sum(v < table[arch] for v in table.values())
                                                       + 0.5 * (sum(v == table[arch] for v in table.values()) - 1))
                                                / (len(table) - 1))
    assert out["lanas_minus_random_percentile"] == out["results"]["lanas"]["percentile"] - \
        out["results"]["random"]["percentile"]
