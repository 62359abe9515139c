"""``python -m unnas.rank --data moving-digits --generator s3d --pretext <video objective>`` end to end
(tiny budget), and one-line refusals (exit 2, nothing stored) when data, objective and generator
kinds do not match."""

import csv
import json

import pytest

from unnas.rank import main
from unnas.registry import TRAINED_SCORES

VIDEO = ("clip-rotation", "arrow-of-time", "temporal-order", "clip-moco")
TINY = ["--num-archs", "2", "--steps", "1", "--batch-size", "8", "--executor", "local", "--quiet",
        "data.subset_per_class=3",
        "data.frames=4", "data.test_fraction=0.03", "train.precise_bn=0", "eval.knn_k=5",
        "--params", "width=0.0625", "stem=small"]


@pytest.mark.parametrize("objectives", [pytest.param(VIDEO, marks=pytest.mark.slow), ("temporal-order", "clip-moco")])
def test_video_objectives_rank_s3d_on_moving_digits(tmp_path, objectives):
    args = ["--runs-dir", str(tmp_path), "--name", "r", "--data", "moving-digits", "--generator", "s3d",
            "--pretext", ",".join(objectives), *TINY]
    assert main(args) == 0
    run = tmp_path / "r"
    table = list(csv.DictReader((run / "results.csv").open()))
    assert sorted(r["objective"] for r in table) == sorted([*objectives, "supervised"] * 2)
    assert {r["status"] for r in table} == {"done"}
    for r in table:
        assert 0 <= float(r["score"]) <= 1 and int(r["flops"]) > 0
    ranking = json.loads((run / "ranking.json").read_text())
    label_free = {n for n, c in ranking["columns"].items() if not c["uses_labels"]}
    trained = {f"{o}/{t}" for o in objectives for t in TRAINED_SCORES.names()}  # scores of the trained network
    assert label_free == {*objectives, *trained, "params", "flops"} and len(ranking["table"]) == 2
    assert set(ranking["agreement"]) == {*objectives, *trained, *(f"{o}/knn" for o in objectives), "params", "flops"}
    assert all(ranking["agreement"][t]["n"] == 2 for t in trained)
    assert (run / "report.html").is_file() and all((run / f"scatter_{o}.png").is_file() for o in objectives)


@pytest.mark.parametrize("data,generator,pretext,field,words", [
    ("moving-digits", "s3d", "rotation", "--pretext", "rotation works on image data, and this dataset holds video clips"),
    ("moving-digits", "s3d", "moco", "--pretext", "moco works on image data"),
    ("digits", "resnet", "arrow-of-time", "--pretext", "arrow-of-time works on video data, and this dataset holds images"),
    ("digits", "resnet", "clip-moco", "--pretext", "clip-moco works on video data"),
    ("digits", "s3d", "supervised", "--generator", "generator s3d builds video networks, and the data holds image data"),
    ("moving-digits", "resnet", "clip-rotation", "--generator", "generator resnet builds image networks"),
])
def test_mismatched_kinds_are_refused_with_one_line(tmp_path, capsys, data, generator, pretext, field, words):
    args = ["--runs-dir", str(tmp_path), "--data", data, "--generator", generator, "--pretext", pretext, *TINY[:-3]]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {field}: ") and words in err and "allowed:" in err
    assert not list(tmp_path.rglob("store.sqlite"))
