"""``python -m unnas.search`` end to end on the embedded digits, and the derived network trained by
``unnas.rank`` and listed by ``unnas.sample``; bad input is one line with exit status 2."""

import csv
import json

import pytest

from unnas.rank import main as rank_main
from unnas.sample import main as sample_main
from unnas.search.__main__ import main
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
    (["--method", "dmasking", "--generator", "macro"], "--generator"), (["darts.arch_lr=-1"], "darts.arch_lr"),
    (["darts.nope=1"], "darts.nope"), (["--num-archs", "3"], "--num-archs"), (["--steps", "3"], "--steps"),
    (["--pretext", "rotation,jigsaw"], "--pretext"), (["dmasking.resolutions=[0]", "--method", "dmasking",
                                                        "--generator", "fbnet-macro"], "dmasking.resolutions")])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, extra, field):
    assert main(["--generator", "macro", "--runs-dir", str(tmp_path), *FAST, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:") and field in err
    assert not any(tmp_path.iterdir())


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
