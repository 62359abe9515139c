"""``python -m unnas.search`` end to end on the embedded digits, and the derived network trained by
``unnas.rank`` and listed by ``unnas.sample``; bad input is one line with exit status 2."""

import csv
import itertools
import json

import pytest

from unnas.rank import main as rank_main
from unnas.sample import main as sample_main
from unnas.search_cli import main
from unnas.spec import ArchSpec

FAST = ["--data", "digits", "--epochs", "2", "--batch-size", "16", "--quiet", "data.subset_per_class=10"]
TINY = ["--params", "stem=4", "channels=[8,16,16]", "head=32"]


def test_dmasking_search_writes_its_run_folder_and_rank_trains_the_result(tmp_path, capsys):
    args = ["--method", "dmasking", "--generator", "fbnet-macro", "--pretext", "rotation", "--runs-dir",
            str(tmp_path), "--name", "s", "--seed", "1", *TINY, *FAST]
    assert main(args) == 0
    out = capsys.readouterr().out
    run = tmp_path / "s"
    for f in ("config.yaml", "result.json", "trajectory.png", "log.jsonl"):
        assert (run / f).is_file(), f
    res = json.loads((run / "result.json").read_text())
    spec = ArchSpec(res["spec"]["generator"], res["spec"]["params"], res["spec"]["seed"])
    assert spec.generator == "fbnet-macro" and res["arch_id"] == spec.arch_id
    assert len(res["history"]) == 2 and res["complexity"]["flops"] > 0 and res["cpu_seconds"] > 0
    assert {"temperature", "expected_flops", "probabilities"} <= set(res["history"][0])
    events = [json.loads(line)["event"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert events.count("epoch") == 2 and "search_start" in events and "summary" in events
    assert spec.arch_id in out and "python -m unnas.rank --generator fbnet-macro" in out

    assert main(args) == 0  # complete: a rerun resumes from the last checkpoint and derives the same network
    again = json.loads((run / "result.json").read_text())
    assert again["arch_id"] == res["arch_id"] and again["resumed_from_epoch"] == 2
    assert "resumed from the checkpoint of epoch 2" in capsys.readouterr().out

    params = [f"{k}={json.dumps(v)}" for k, v in spec.params.items()]
    assert rank_main(["--generator", "fbnet-macro", "--params", *params, "--num-archs", "1", "--runs-dir",
                      str(tmp_path), "--name", "r", "--data", "digits", "--steps", "2", "--batch-size", "16",
                      "--quiet", "data.subset_per_class=10", "train.precise_bn=0", "eval.knn_k=5"]) == 0
    rows = list(csv.DictReader((tmp_path / "r" / "results.csv").open()))
    assert {r["arch_id"] for r in rows} == {spec.arch_id} and {r["status"] for r in rows} == {"done"}
    assert sample_main(["--generator", "fbnet-macro", "-n", "1", "--params", *params]) == 0
    assert spec.arch_id in capsys.readouterr().out


def test_darts_search_on_the_macro_supernet_gives_a_macro_spec(tmp_path):
    args = ["--method", "darts", "--generator", "macro", "--params", "width=0.125", "--runs-dir", str(tmp_path),
            "--name", "d", *FAST, "data.image_size=8"]
    assert main(args) == 0
    res = json.loads((tmp_path / "d" / "result.json").read_text())
    assert res["spec"]["generator"] == "macro" and len(res["spec"]["params"]["arch"]) == 8
    assert main([*args[:-1], "data.image_size=8", "darts.arch_lr=0.01"]) == 2  # same folder, other options


@pytest.mark.parametrize("extra,field", [
    (["--method", "nope"], "search method"), (["--method", "darts", "--generator", "randwire-ws"], "--generator"),
    (["--method", "dmasking", "--generator", "macro"], "--generator"),
    (["--method", "darts", "darts.arch_lr=-1"], "darts.arch_lr"), (["--method", "darts", "darts.nope=1"], "darts.nope"),
    (["--method", "darts", "--num-archs", "3"], "--num-archs"), (["--method", "darts", "--steps", "3"], "--steps"),
    (["--method", "darts", "--pretext", "rotation,jigsaw"], "--pretext"),
    (["dmasking.resolutions=[0]", "--method", "dmasking", "--generator", "fbnet-macro"], "dmasking.resolutions"),
    (["--method", "darts", "--score", "swap"], "--score"),
    (["--method", "darts", "--no-supervised"], "--no-supervised"),
    # one command, two kinds of search: exactly one of them
    (["--method", "darts", "--strategy", "lanas"], "--method"), (["search.method=darts", "--strategy", "lanas"], "--method"),
    ([], "--strategy"), (["--strategy", "nope"], "unknown strategy"), (["--strategy", "sh"], "unnas.rank"),
    (["--strategy", "lanas", "--num-archs", "0"], "--num-archs"),
    (["--strategy", "lanas", "search.clock=gpu"], "search.clock"), (["--strategy", "lanas", "--score", "nope"], "--score"),
    (["--strategy", "lanas", "--score", "reference"], "--score"), (["--strategy", "lanas", "darts.arch_lr=1"], "darts"),
    (["--strategy", "lanas", "--time-budget", "-1"], "search.time_budget")])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, extra, field):
    assert main(["--generator", "macro", "--runs-dir", str(tmp_path), *FAST, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and field in err
    assert not any(tmp_path.iterdir())


def _toy_macro_table(path):
    """Every NAS-Bench-Macro network with a made-up accuracy rising with each layer's choice."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["structure", "accuracy"])
        for digits in itertools.product("012", repeat=8):
            w.writerow(["".join(digits), 80 + sum((8 - i) * int(c) for i, c in enumerate(digits)) / 10])
    return path


def test_strategy_search_from_the_command_line_with_a_proxy_score(tmp_path, capsys):
    args = ["--strategy", "evolution", "--generator", "macro", "--params", "width=0.125", "--pretext", "none",
            "--proxies", "naswot", "--score", "naswot", "--num-archs", "4", "--data", "fake", "--runs-dir", str(tmp_path),
            "--name", "ev", "--seed", "3", "--executor", "local", "--quiet", "data.image_size=16",
            "evolution.population=2", "evolution.tournament=2"]
    assert main(args) == 0
    out = json.loads((tmp_path / "ev" / "search.json").read_text())
    assert out["strategy"] == "evolution" and out["score"] == "naswot" and out["evaluated"] == 4
    assert out["job_cpu_seconds"] > 0 and out["clock"] == "wall"
    rows = list(csv.DictReader((tmp_path / "ev" / "results.csv").open()))
    assert len(rows) == 4 and {r["objective"] for r in rows} == {"naswot"}
    assert "best:" in capsys.readouterr().out
    saved = (tmp_path / "ev" / "config.yaml").read_text()
    assert "strategy: evolution" in saved and "samples: 4" in saved


def test_oracle_strategy_search_with_a_cpu_clock_budget_runs_no_job(tmp_path):
    table = _toy_macro_table(tmp_path / "t.csv")
    assert main(["--strategy", "lanas", "--generator", "macro", "--score", "reference", "--reference", str(table),
                 "--num-archs", "30", "--runs-dir", str(tmp_path), "--name", "o", "--quiet", "--time-budget", "5",
                 "--clock", "cpu"]) == 0
    out = json.loads((tmp_path / "o" / "search.json").read_text())
    assert out["evaluated"] == 30 and out["clock"] == "cpu"  # the table costs no job time: the budget never ends it
    assert out["best"]["percentile"] > 90 and not (tmp_path / "o" / "store.sqlite").exists()


def test_options_map_onto_one_search_section():
    from unnas.search_cli import options_to_config, parser

    a = parser().parse_intermixed_args(["--strategy", "lanas", "--score", "swap", "--time-budget", "60", "--clock",
                                        "cpu", "--num-archs", "7", "--proxies", "swap"])
    base = options_to_config(a)
    assert base["search"] == {"strategy": "lanas", "score": "swap", "time_budget": 60.0, "clock": "cpu"}
    assert "score" not in base.get("eval", {}) and base["run"]["proxies"] == "swap"
    a = parser().parse_intermixed_args(["--method", "dmasking"])
    assert options_to_config(a)["search"] == {"method": "dmasking"}


@pytest.mark.slow
def test_dmasking_on_cifar10_and_rank_trains_the_result(tmp_path, cifar10_root):
    data = ["--data", "imagefolder", "--data-root", str(cifar10_root), "data.subset_per_class=20", "--quiet"]
    assert main(["--method", "dmasking", "--generator", "fbnet-macro", "--runs-dir", str(tmp_path), "--name", "c",
                 "--epochs", "1", "--batch-size", "32", *data]) == 0
    res = json.loads((tmp_path / "c" / "result.json").read_text())
    params = [f"{k}={json.dumps(v)}" for k, v in res["spec"]["params"].items()]
    assert rank_main(["--generator", "fbnet-macro", "--params", *params, "--num-archs", "1", "--runs-dir",
                      str(tmp_path), "--name", "r", "--steps", "2", "--batch-size", "32", *data,
                      "train.precise_bn=0", "eval.knn_k=5"]) == 0
    rows = list(csv.DictReader((tmp_path / "r" / "results.csv").open()))
    assert {r["arch_id"] for r in rows} == {res["arch_id"]} and {r["status"] for r in rows} == {"done"}
