"""``python -m unnas.rank --pretext rotation|jigsaw|colorization`` end to end: every pretext writes
the same outputs (store, results.csv, ranking.json, scatter, report); colorization, which predicts
colour, runs on RGB data and refuses grayscale ``digits`` with one line."""

import csv
import json

import pytest

from unnas.rank import main

TINY = ["--generator", "anynet", "--max-params", "30k", "--num-archs", "3", "--steps", "2",
        "--batch-size", "8", "--executor", "local", "--quiet", "data.subset_per_class=4", "train.precise_bn=0", "eval.knn_k=5"]
OUTPUTS = ["store.sqlite", "results.csv", "ranking.json", "report.html", "config.yaml", "log.jsonl"]


def _outputs(run):
    return {p.name for p in run.iterdir() if p.is_file() and not p.name.startswith(".")}


@pytest.mark.parametrize("pretext,data", [("rotation", "digits"), ("jigsaw", "digits"),
                                          ("colorization", "fake"), ("rotation", "fake")])
def test_every_pretext_writes_the_same_outputs(tmp_path, pretext, data):
    assert main(["--runs-dir", str(tmp_path), "--name", "r", "--pretext", pretext, "--data", data, *TINY]) == 0
    run = tmp_path / "r"
    files = _outputs(run)
    assert set(OUTPUTS) <= files and f"scatter_{pretext}.png" in files
    table = list(csv.DictReader((run / "results.csv").open()))
    assert sorted(r["objective"] for r in table) == [pretext] * 3 + ["supervised"] * 3
    assert {r["status"] for r in table} == {"done"}
    ranking = json.loads((run / "ranking.json").read_text())
    assert len(ranking["table"]) == 3 and pretext in ranking["agreement"] and ranking["failed"] == []


def test_colorization_refuses_grayscale_digits(tmp_path, capsys):
    assert main(["--runs-dir", str(tmp_path), "--pretext", "colorization", "--data", "digits", *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "1 channel" in err and "RGB" in err
    assert not list(tmp_path.rglob("store.sqlite"))
