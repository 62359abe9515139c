"""``python -m unnas.findings``: every finding end to end at the test budget (outputs exist, numbers
finite), resume from the runs' stores, bad input, and the verdict rules on hand-computed numbers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from unnas.findings import load, main, run_finding
from unnas.findings.base import NOT_AT_SCALE, PARTLY, REPRODUCED, separated
from unnas.findings.existing import DEFAULT_TABLE, samples_to_target
from unnas.findings.relational import quadratic_fit

NAMES = ["fbnet", "lanas-decoupling", "moco", "nds", "randwire", "relational", "resnext", "s3d", "unnas"]


def test_list_names_all_nine(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == NAMES
    assert sorted(load().names()) == NAMES


@pytest.mark.parametrize("argv, field", [(["nope", "--budget", "test"], "finding"),
                                         (["resnext", "--budget", "huge"], "--budget")])
def test_bad_input_is_one_line_and_writes_nothing(argv, field, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {field}") and "\n" not in err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("findings")


@pytest.mark.parametrize("name", NAMES)
def test_each_finding_runs_at_test_budget(name, runs):
    if name == "lanas-decoupling" and not DEFAULT_TABLE.is_file():
        pytest.skip("NAS-Bench-Macro's table is not beside the project")
    rec = run_finding(name, "test", 0, runs / name)
    line = (runs / name / "result.json").read_text()
    assert line.count("\n") == 1 and json.loads(line) == rec
    assert (runs / name / "figure.png").stat().st_size > 5000
    assert rec["finite"] and rec["verdict"] in (REPRODUCED, PARTLY, NOT_AT_SCALE) and rec["reason"]
    assert rec["commands"] and all(c.startswith("python -m unnas.") for c in rec["commands"])
    assert (runs / name / "verdict.txt").read_text().startswith(f"{name} (test budget, seed 0): {rec['verdict']}")


def test_rerun_resumes_from_the_stores(runs):
    first = json.loads((runs / "relational" / "result.json").read_text()) if (runs / "relational").exists() \
        else run_finding("relational", "test", 0, runs / "relational")
    again = run_finding("relational", "test", 0, runs / "relational")
    assert again["numbers"] == first["numbers"]
    log = (runs / "relational" / "logs" / "relational-mlp.log").read_text()
    assert "0 already stored" in log and log.rstrip().count("already stored, 0 to run") == 1


def test_quadratic_fit_finds_the_known_maximum():
    rng = np.random.default_rng(0)
    c, path = rng.uniform(0, 1, 30), rng.uniform(1, 3, 30)
    acc = 0.8 - (c - 0.4) ** 2 - 0.5 * (path - 2.0) ** 2  # maximum at C = 0.4, L = 2.0
    fit = quadratic_fit(c, path, acc)
    assert fit["r2"] == pytest.approx(1.0)
    assert fit["interior"] and abs(fit["best_C"] - 0.4) < 0.03 and abs(fit["best_L"] - 2.0) < 0.06
    assert fit["best_acc"] == pytest.approx(0.8, abs=1e-3)
    edge = quadratic_fit(c, path, c)  # increasing in C: the maximum is on the edge
    assert not edge["interior"]


def test_separated_needs_two_standard_errors_and_two_values():
    a, b = {"mean": 0.60, "std": 0.01, "n": 4}, {"mean": 0.50, "std": 0.01, "n": 4}
    assert separated(a, b) and not separated(b, a)
    assert not separated({"mean": 0.6, "std": 0.2, "n": 4}, b)  # 0.1 < 2 * hypot(0.1, 0.005)
    assert not separated({**a, "n": 1, "std": 0.0}, b)


def test_samples_to_target():
    traj = [{"n": 1, "reference": 0.90}, {"n": 2, "reference": 0.93}, {"n": 3, "reference": 0.95}]
    assert samples_to_target(traj, 0.93, 10) == 2
    assert samples_to_target(traj, 0.99, 10) == 10


def test_verdicts_are_comparisons_of_the_numbers():
    f = load().get("resnext")()
    sweep = [{"groups": g, "mean": e, "std": 0.005, "n": 3, "flops": 1e6} for g, e in ((1, 0.30), (2, 0.28), (4, 0.25))]
    assert f.verdict({"sweep": sweep}).outcome == REPRODUCED
    assert f.verdict({"sweep": sweep[::-1]}).outcome == NOT_AT_SCALE
    r = load().get("randwire")()
    g = {k: {"mean": m, "std": 0.01, "n": 4, "flops": 1e6} for k, m in (("WS", 0.5), ("ER", 0.5), ("BA", 0.4))}
    assert r.verdict({"generators": g}).outcome == REPRODUCED
    g["BA"]["mean"] = 0.6
    assert r.verdict({"generators": g}).outcome == PARTLY
    assert math.isfinite(g["WS"]["mean"])


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_each_finding_runs_at_quick_budget(name, tmp_path):
    from unnas.findings.data import DEFAULT_CIFAR

    if name == "lanas-decoupling" and not DEFAULT_TABLE.is_file():
        pytest.skip("NAS-Bench-Macro's table is not beside the project")
    if name == "unnas" and not (DEFAULT_CIFAR / "train").is_dir():
        pytest.skip("CIFAR-10 is not in the cache folder")
    rec = run_finding(name, "quick", 0, tmp_path)
    assert rec["finite"] and (tmp_path / "figure.png").exists() and rec["cpu_seconds"] < 300


def test_fbnet_verdict_thresholds():
    f = load().get("fbnet")()

    def numbers(ratio):
        small = {"choices": 1, "cpu_s_per_step": 0.1, "peak_mib": 100.0}
        return {"masking": [small, {**small, "choices": 12, "cpu_s_per_step": 0.1 * ratio}],
                "darts_macro": {"cpu_s_per_step": 0.3, "peak_mib": 150.0}}

    assert [f.verdict(numbers(r)).outcome for r in (1.2, 1.7, 3.0)] == [REPRODUCED, PARTLY, NOT_AT_SCALE]


def test_lanas_decoupling_verdict():
    f = load().get("lanas-decoupling")()
    lt = {m: {"many": 0.8, "medium": 0.5, "few": 0.3, "all": 0.6} for m in ("ncm", "crt", "tau_norm", "lws")}
    lt["joint"] = {"many": 0.9, "medium": 0.3, "few": 0.05, "all": 0.5}
    search = {"lanas": {"samples": [40, 60], "median": 50.0, "capped": 0},
              "random": {"samples": [300, 500], "median": 400.0, "capped": 0}}
    assert f.verdict({"search": search, "longtail": lt, "cap": 1000}).outcome == REPRODUCED
    search["lanas"] = {"samples": [300, 400], "median": 350.0, "capped": 0}  # 400 / 350 < 2
    assert f.verdict({"search": search, "longtail": lt, "cap": 1000}).outcome == PARTLY
    lt["joint"] = {"many": 0.9, "medium": 0.9, "few": 0.9, "all": 0.9}
    assert f.verdict({"search": search, "longtail": lt, "cap": 1000}).outcome == NOT_AT_SCALE


def test_ctrl_c_in_a_command_stops_the_finding_with_one_line(tmp_path, monkeypatch, capsys):
    from unnas.findings import base, cli

    ctx = base.Context(tmp_path, "test", 0)
    with pytest.raises(KeyboardInterrupt):  # the command's own Ctrl-C status, not a failure
        ctx._call("unnas.rank", lambda argv: base.INTERRUPTED, "r", [])
    with pytest.raises(RuntimeError, match="status 1"):
        ctx._call("unnas.rank", lambda argv: 1, "r", [])

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("unnas.findings.run_finding", interrupted)
    assert cli.main(["fbnet", "--out", str(tmp_path / "f")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("interrupted:") and "rerun" in err[0]


@pytest.mark.parametrize("budget", ["quick", "full"])
def test_nds_budgets_can_draw_every_space_inside_its_flops_window(budget):
    """Each space of each pair has ``models`` candidates inside the pair's FLOPs window (at the data's image
    size), so an hour-long run cannot stop at its second space on an empty window."""
    from unnas.cli import parse_count
    from unnas.findings.nds import NDS, SPACES, space_budget
    from unnas.population import parse_params, parse_vary, sample_population

    b = NDS.budgets[budget]
    size, ch = (32, 3) if b["data"].startswith("cifar10") else (16, 1)
    for space in SPACES:
        params, vary, window = space_budget(b, space)
        lo, hi = (parse_count(str(v)) for v in window)
        specs = sample_population(space, b["models"], 0, parse_params(params), in_channels=ch, image_size=size,
                                  flops_range=(lo or None, hi), vary=parse_vary(vary))
        assert len(specs) == b["models"]
