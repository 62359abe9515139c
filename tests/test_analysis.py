"""Ranking analysis on hand-made job rows: aggregation, objective comparison, EDF populations, KS,
random experiment, run folders."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from unnas.eval.correlation import agreement
from unnas.eval.random_experiment import random_experiment

from unnas.analysis import (
    RunInfo,
    agreement_by_generator,
    analyze,
    best_objective,
    build_ranking,
    compare_objectives,
    config_differences,
    dumps,
    error_populations,
    ks_pairs,
    load_run,
    merge_rows,
    random_curves,
    rho_difference,
)
from unnas.errors import UserError
from unnas.store import JobRow, Store

SUP = [0.60, 0.70, 0.65, 0.90, 0.80, 0.75]
ROT = [0.30, 0.40, 0.50, 0.80, 0.60, 0.55]  # one swap (a1/a2) against SUP
JIG = [0.50, 0.20, 0.40, 0.10, 0.30, 0.60]
PARAMS = [100, 400, 200, 1600, 800, 50]
GENS = ["ws", "ws", "ws", "ba", "ba", "ba"]


def _row(arch, obj, seed, value, status="done", gen=None, params=None, error=None, job=None):
    i = int(arch[1:])
    p = PARAMS[i] if params is None and status == "done" else params
    m = {"params": p, "flops": 10 * p, "score": value, "objective_acc": value} if status == "done" else {}
    return JobRow(job or f"{arch}-{obj}-{seed}", arch, json.dumps({"i": i}), gen or GENS[i], obj, seed, status, m,
                  error=error)


def rows(seeds=(0,)):
    out = []
    for i in range(6):
        a = f"a{i}"
        for s in seeds:
            d = 0.01 * s  # a seed shifts every score equally: ranks are unchanged
            out += [_row(a, "supervised", s, SUP[i] + d), _row(a, "rotation", s, ROT[i] + d),
                    _row(a, "jigsaw", s, JIG[i] + d)]
    return out


def test_build_ranking_means_over_seeds_and_order():
    rk = build_ranking(rows(seeds=(0, 1)), n_boot=50, objective_order=["rotation", "jigsaw"])
    assert rk.objectives == ["rotation", "jigsaw"]  # the --pretext order, not alphabetical
    assert rk.scores["rotation"]["a3"] == pytest.approx(0.805)
    assert rk.supervised["a0"] == pytest.approx(0.605)
    assert rk.noise_ceiling["rotation"] == pytest.approx(1.0)  # both seeds rank alike
    assert rk.generators == {f"a{i}": GENS[i] for i in range(6)}
    assert rk.agreement["rotation"]["spearman"]["value"] == pytest.approx(stats.spearmanr(ROT, SUP).statistic)
    np.testing.assert_array_equal(rk.column("params"), PARAMS)
    np.testing.assert_array_equal(rk.column("flops"), np.array(PARAMS) * 10)
    assert build_ranking(rows(), n_boot=10).objectives == ["jigsaw", "rotation"]  # default: by name


def test_ranking_of_a_saved_config_orders_objectives_as_the_command_named_them():
    from unnas.analysis import ranking_of

    rk, _ = ranking_of(rows(), {"run": {"pretext": "rotation,jigsaw"}}, n_boot=0)
    assert rk.objectives == ["rotation", "jigsaw"] and rk.primary == "rotation"


def test_complexity_prefers_the_supervised_job():
    rs = [_row("a0", "rotation", 0, 0.5, params=999), _row("a0", "supervised", 0, 0.6, params=111),
          _row("a1", "rotation", 0, 0.4, params=222)]
    rk = build_ranking(rs, n_boot=10)
    assert rk.complexity["a0"]["params"] == 111 and rk.complexity["a1"]["params"] == 222


def test_failed_candidates_are_missing_not_zero():
    rs = rows() + [_row("a6", "rotation", 0, None, status="failed", gen="ws", error="boom"),
                   _row("a6", "supervised", 0, None, status="timeout", gen="ws", error="slow")]
    rk = build_ranking(rs, n_boot=20)
    assert rk.arch_ids[-1] == "a6" and math.isnan(rk.column("rotation")[-1])
    assert rk.agreement["rotation"]["n"] == 6 and rk.agreement["rotation"]["n_dropped"] == 1
    assert sorted((r.status, r.error) for r in rk.failed) == [("failed", "boom"), ("timeout", "slow")]
    assert rk.table()[-1]["arch_id"] == "a6"


def test_compare_objectives_and_baselines_equal_direct_agreement():
    rk = build_ranking(rows(), n_boot=100, seed=3, objective_order=["rotation", "jigsaw"])
    comp = compare_objectives(rk, n_boot=100, seed=3)
    assert [(r["name"], r["kind"]) for r in comp] == [("rotation", "objective"), ("jigsaw", "objective"),
                                                       ("params", "baseline"), ("flops", "baseline")]
    for i, col in ((0, ROT), (2, np.log10(PARAMS))):  # sizes are correlated in decades
        direct = agreement(col, SUP, n_boot=100, seed=3)
        assert {k: comp[i]["agreement"][k] for k in direct} == direct
    # the reference accuracy of each column's first pick: rotation's best (a3) has SUP 0.80
    assert comp[0]["agreement"]["top1_reference"] == SUP[int(np.argmax(ROT))]
    # hand-computed: SUP ranks 1 3 2 6 5 4, PARAMS ranks 2 4 3 6 5 1 -> sum d^2 = 1+1+1+0+0+9 = 12
    assert comp[2]["agreement"]["spearman"]["value"] == pytest.approx(1 - 6 * 12 / (6 * 35))
    assert comp[3]["agreement"]["spearman"]["value"] == comp[2]["agreement"]["spearman"]["value"]
    # rotation: one adjacent swap -> rho = 1 - 6*2/210
    assert comp[0]["agreement"]["spearman"]["value"] == pytest.approx(1 - 12 / 210)
    assert best_objective(comp) == "rotation"
    no_sup = build_ranking([r for r in rows() if r.objective != "supervised"], n_boot=10)
    assert compare_objectives(no_sup) == [] and best_objective([]) is None


def _comp(name, rho, tau, kind="objective"):
    return {"name": name, "kind": kind, "noise_ceiling": math.nan,
            "agreement": {"spearman": {"value": rho}, "kendall": {"value": tau}}}


def test_best_objective_ties_nan_and_baselines():
    comp = [_comp("b", 0.5, 0.3), _comp("a", 0.5, 0.3), _comp("c", 0.5, 0.4), _comp("d", math.nan, math.nan),
            _comp("params", 0.9, 0.8, "baseline")]
    assert best_objective(comp) == "c"  # equal rho: higher tau wins; baselines never win
    assert best_objective(comp[:2]) == "a"  # full tie: by name
    assert best_objective([comp[3], comp[4]]) is None


def test_agreement_within_each_generator():
    rk = build_ranking(rows(), n_boot=30)
    by = agreement_by_generator(rk, n_boot=30)
    assert sorted(by) == ["ba", "ws"]
    for g, idx in (("ws", [0, 1, 2]), ("ba", [3, 4, 5])):
        s, r = np.array(ROT)[idx], np.array(SUP)[idx]
        assert by[g]["rotation"]["n"] == 3
        assert by[g]["rotation"]["spearman"]["value"] == pytest.approx(stats.spearmanr(s, r).statistic)
    single = build_ranking([r for r in rows() if r.generator == "ws"], n_boot=10)
    assert agreement_by_generator(single) == {}


def test_error_populations_and_ks():
    rk = build_ranking(rows(), n_boot=10, objective_order=["rotation", "jigsaw"])
    pops = error_populations(rk)
    assert list(pops["generator"]) == ["ba", "ws"]
    np.testing.assert_allclose(pops["generator"]["ws"]["error"], [40.0, 30.0, 35.0])
    np.testing.assert_allclose(pops["generator"]["ba"]["params"], [1600, 800, 50])
    assert list(pops["objective"]) == ["rotation", "jigsaw", "supervised"]
    np.testing.assert_allclose(pops["objective"]["rotation"]["error"], 100 * (1 - np.array(ROT)))
    res = ks_pairs(pops["generator"])
    assert len(res) == 1 and (res[0]["a"], res[0]["b"]) == ("ba", "ws")
    ref = stats.ks_2samp([10.0, 20.0, 25.0], [40.0, 30.0, 35.0])
    assert res[0]["D"] == pytest.approx(ref.statistic) == 1.0
    assert res[0]["p_value"] == pytest.approx(ref.pvalue)


def test_random_curves_score_equal_to_supervised_is_the_oracle():
    rng = np.random.default_rng(0)
    acc = np.round(rng.uniform(0.5, 0.9, size=40), 2)  # with ties
    rs = [JobRow(f"{o}{i}", f"x{i}", "{}", "g", o, 0, "done", {"objective_acc": float(acc[i]), "score": float(acc[i])})
          for i in range(40) for o in ("supervised", "rotation")]
    curves = random_curves(build_ranking(rs, n_boot=0), n_draws=300, seed=1)
    assert curves["rotation"]["proxy"]["expected"] == pytest.approx(curves["reference"]["oracle"]["expected"],
                                                                    abs=1e-12)
    assert curves["rotation"]["proxy"]["mean"] == curves["rotation"]["oracle"]["mean"]
    assert curves["reference"]["oracle"]["expected"][-1] == pytest.approx(acc.max())


def test_random_curves_random_score_stays_at_population_mean():
    rng = np.random.default_rng(5)
    n = 400
    acc = rng.normal(0.7, 0.05, size=n)
    noise = rng.uniform(size=n)
    rs = []
    for i in range(n):
        rs += [JobRow(f"s{i}", f"x{i}", "{}", "g", "supervised", 0, "done", {"objective_acc": float(acc[i])}),
               JobRow(f"r{i}", f"x{i}", "{}", "g", "rotation", 0, "done", {"score": float(noise[i])})]
    curves = random_curves(build_ranking(rs, n_boot=0), n_draws=500, seed=2)
    proxy, ref = curves["rotation"]["proxy"], curves["reference"]
    pop = acc.mean()
    assert ref["m"] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 400]
    for mu, sd in zip(proxy["mean"][:-1], proxy["std"][:-1]):
        assert mu - sd <= pop <= mu + sd
    # m = n: always the candidate with the highest random score (no band left)
    assert proxy["std"][-1] == pytest.approx(0.0, abs=1e-12)
    assert proxy["mean"][-1] == pytest.approx(acc[np.argmax(noise)], abs=1e-12)
    assert ref["oracle"]["expected"][-1] == pytest.approx(acc.max())
    assert ref["random"]["expected"] == pytest.approx([pop] * len(ref["m"]))


def test_random_curves_use_the_candidates_with_every_score():
    rs = rows() + [_row("a6", "supervised", 0, 0.99, gen="ws", params=5),
                   _row("a6", "rotation", 0, 0.95, gen="ws", params=5)]  # no jigsaw score
    rk = build_ranking(rs, n_boot=0)
    curves = random_curves(rk, n_draws=50)
    assert {c["n"] for c in curves.values()} == {6}
    assert curves["reference"]["oracle"]["expected"][-1] == pytest.approx(max(SUP))
    direct = random_experiment(ROT, SUP, n_draws=50)
    assert curves["rotation"]["proxy"]["expected"] == pytest.approx(direct["proxy"]["expected"])
    assert random_curves(build_ranking([r for r in rows() if r.objective != "supervised"], n_boot=0)) == {}


def test_merge_rows_later_run_wins(tmp_path):
    a = RunInfo(tmp_path / "a", {}, "", [_row("a0", "rotation", 0, 0.1), _row("a1", "rotation", 0, 0.2)], [])
    b = RunInfo(tmp_path / "b", {}, "", [_row("a0", "rotation", 0, 0.9)], [])
    merged = {r.job_id: r.metrics["score"] for r in merge_rows([a, b])}
    assert merged == {"a0-rotation-0": 0.9, "a1-rotation-0": 0.2}


def test_config_differences():
    mk = lambda **d: RunInfo(None, d, "", [], [])  # noqa: E731
    a = mk(data={"name": "digits", "seed": 0}, train={"epochs": 2}, model={"generator": "ws"})
    b = mk(data={"name": "mnist", "seed": 0}, train={"epochs": 2}, model={"generator": "ba"})
    c = mk(data={"name": "digits", "seed": 0}, train={"epochs": 3, "lr": 0.1}, model={"generator": "ws"})
    assert config_differences([a, b]) == ["data.name"]  # the generator may differ
    assert config_differences([a, b, c]) == ["data.name", "train.epochs", "train.lr"]
    assert config_differences([a]) == []


def test_load_run_and_analyze(tmp_path):
    with pytest.raises(UserError, match="RUN_DIR"):
        load_run(tmp_path / "nope")
    assert not (tmp_path / "nope").exists()
    run = tmp_path / "run"
    with Store(run / "store.sqlite") as st:
        for r in rows():
            st.put(r)
    (run / "config.yaml").write_text("run:\n  pretext: rotation,jigsaw\neval:\n  score: pretext\n")
    (run / "log.jsonl").write_text('{"event": "run_start", "argv": ["x"]}\nnot json\n[1]\n{"event": "summary"}\n')
    info = load_run(run)
    assert info.name == "run" and len(info.rows) == 18
    assert [e["event"] for e in info.events] == ["run_start", "summary"]
    an = analyze([info], n_boot=20, n_draws=20)
    assert an.score_label == "label-free held-out score" and an.best == "rotation" and an.warnings == []
    assert an.ranking.objectives == ["rotation", "jigsaw"]
    assert an.status == {"done": 18, "failed": 0, "diverged": 0, "timeout": 0}
    text = dumps(an.to_json())  # numpy arrays and scalars serialise
    assert json.loads(text)["best_objective"] == "rotation"
    (run / "config.yaml").write_text("run: [unclosed\n")
    with pytest.raises(UserError, match="config.yaml"):
        load_run(run)
    with pytest.raises(UserError):
        analyze([])


def _ranking_from(columns: dict[str, list]) -> "object":
    n = len(columns["supervised"])
    rs = []
    for o, vals in columns.items():
        for i, v in enumerate(vals):
            key = "objective_acc" if o == "supervised" else "score"
            rs.append(JobRow(f"{o}{i}", f"x{i:03d}", "{}", "g", o, 0, "done", {key: v}))
    return build_ranking(rs, n_boot=0), n


def test_rho_difference_extremes():
    sup = [0.1, 0.5, 0.3, 0.9, 0.7, 0.2, 0.4]
    rk, _ = _ranking_from({"supervised": sup, "good": sup, "bad": [-v for v in sup]})
    d = rho_difference(rk, "good", "bad", n_boot=300)
    assert d["n"] == 7 and d["value"] == pytest.approx(2.0)
    assert d["ci_low"] == pytest.approx(2.0) and d["ci_high"] == pytest.approx(2.0) and d["separated"]
    same = rho_difference(rk, "good", "good", n_boot=100)
    assert same["value"] == 0.0 and same["ci_low"] == same["ci_high"] == 0.0 and not same["separated"]


def test_rho_difference_matches_explicit_scipy_loop():
    rng = np.random.default_rng(11)
    n = 15
    sup = np.round(rng.uniform(size=n), 1)  # ties everywhere
    a = np.round(sup + rng.normal(0, 0.2, size=n), 1)
    b = np.round(rng.uniform(size=n), 1)
    rk, _ = _ranking_from({"supervised": list(sup), "a": list(a), "b": list(b)})
    d = rho_difference(rk, "a", "b", n_boot=400, seed=5)
    assert d["value"] == pytest.approx(stats.spearmanr(a, sup).statistic - stats.spearmanr(b, sup).statistic)
    idx = np.random.default_rng(5).integers(0, n, size=(400, n))
    diffs = []
    for row in idx:
        x, y, r = a[row], b[row], sup[row]
        if any(np.all(v == v[0]) for v in (x, y, r)):
            continue
        diffs.append(stats.spearmanr(x, r).statistic - stats.spearmanr(y, r).statistic)
    assert d["n_boot_used"] == len(diffs)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    assert d["ci_low"] == pytest.approx(lo, abs=1e-12) and d["ci_high"] == pytest.approx(hi, abs=1e-12)
    assert d["separated"] == (lo > 0 or hi < 0)


def test_rho_difference_uses_complete_candidates_only():
    rk, _ = _ranking_from({"supervised": [1, 2, 3, 4, 5], "a": [1, 2, 3, 4, float("nan")], "b": [5, 4, 3, 2, 1]})
    d = rho_difference(rk, "a", "b", n_boot=50)
    assert d["n"] == 4 and d["value"] == pytest.approx(2.0)
    rk, _ = _ranking_from({"supervised": [1, 2, 3], "a": [1, 1, 1], "b": [1, 2, 3]})
    assert math.isnan(rho_difference(rk, "a", "b")["value"])  # constant score: undefined
