"""``python -m unnas.rank --generator <each>`` with rotation on ``digits`` (video generators: clip-rotation
on ``moving-digits``), end to end (tiny budget):
every registered generator samples a population, trains, scores, ranks and writes its outputs.
Populations are complexity-controlled (``--max-params``), as NDS does, so that the published
ResNet/ResNeXt spaces (candidates up to tens of millions of parameters) stay cheap here."""

import csv

import pytest

from unnas.generators.complexity import count_params
from unnas.rank import main
from unnas.registry import GENERATORS
from unnas.spec import ArchSpec, build, get_generator

# one process: the executors have their own tests (test_faults, test_layout); starting workers would dominate here
FAST = ["--data", "digits", "--pretext", "rotation", "--num-archs", "3", "--steps", "1", "--batch-size", "8",
        "--executor", "local", "--quiet", "data.subset_per_class=4", "train.precise_bn=0", "eval.knn_k=5"]
# fixed parameters that make a candidate cheap where the generator's defaults are not
CHEAP = {"timm": ["model=resnet10t"], "nb201": ["width=0.25"], "macro": ["width=0.125"],
         "relational-mlp": ["width=64", "nodes=8"], "s3d": ["width=0.0625", "stem=small"]}
VIDEO = ["--data", "moving-digits", "--pretext", "clip-rotation", "data.frames=4"]  # for video generators
MAX_PARAMS = 300_000


@pytest.mark.parametrize("name", GENERATORS.names())
def test_rank_runs_with_every_generator(tmp_path, name):
    params = CHEAP.get(name, [])
    # a timm model is one fixed candidate (no population to bound)
    n = 1 if name == "timm" else 3
    bound = [] if name == "timm" else ["--max-params", "300k"]
    video = get_generator(name).data_kind == "video"
    args = ["--runs-dir", str(tmp_path), "--name", "r", "--generator", name, *bound, *FAST, "--num-archs", str(n),
            *(VIDEO if video else [])]
    assert main([*args, *(["--params", *params] if params else [])]) == 0
    table = list(csv.DictReader((tmp_path / "r" / "results.csv").open()))
    pretext = "clip-rotation" if video else "rotation"
    assert sorted(r["objective"] for r in table) == [pretext] * n + ["supervised"] * n
    assert {r["status"] for r in table} == {"done"} and {r["generator"] for r in table} == {name}
    for r in table:  # the complexity bound held
        assert 0 < int(r["params"]) <= (MAX_PARAMS if bound else 10 ** 8)
        assert 0 <= float(r["score"]) <= 1
    assert (tmp_path / "r" / f"scatter_{pretext}.png").is_file() and (tmp_path / "r" / "report.html").is_file()


def test_complexity_bounds_select_the_population(tmp_path):
    """--min/--max-params keep exactly the candidates in range (counted again here)."""
    args = ["--runs-dir", str(tmp_path), "--name", "r", "--generator", "nds-resnext-b", *FAST]
    assert main([*args, "--min-params", "100k", "--max-params", "0.5M", "--no-supervised", "--num-archs", "2"]) == 0
    table = list(csv.DictReader((tmp_path / "r" / "results.csv").open()))
    assert len(table) == 2
    for r in table:
        n = count_params(build(ArchSpec.from_json(r["spec"]), 1))
        assert n == int(r["params"]) and 100_000 <= n <= 500_000


def test_empty_complexity_range_is_one_clear_error(tmp_path, capsys):
    args = ["--runs-dir", str(tmp_path), "--generator", "resnet", *FAST]
    assert main([*args, "--max-params", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--max-params" in err and "params" in err
    assert not list(tmp_path.rglob("store.sqlite"))
    with pytest.raises(SystemExit) as e:
        main([*args, "--max-flops", "lots"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "--max-flops" in err and "lots" in err


def test_complexity_summary_hints_at_heavy_cpu_populations():
    from unnas.population import sample_population
    from unnas.ranking import complexity_summary

    heavy = sample_population("nds-resnext-b", 8, 0, in_channels=1, image_size=16)
    line, hint = complexity_summary(heavy, 1, 16, "cpu")
    assert line.startswith("population: ") and "MFLOPs per 1x16x16 image" in line
    assert "--max-flops" in hint and "candidate(s) above 1 GFLOPs" in hint
    assert complexity_summary(heavy, 1, 16, "cuda")[1] == ""  # a GPU handles them
    light = sample_population("nds-resnext-b", 3, 0, in_channels=1, image_size=16, flops_range=(None, 1e8))
    assert complexity_summary(light, 1, 16, "cpu")[1] == ""


def test_vary_draws_each_candidate_from_the_lists_and_is_stored(tmp_path):
    """--vary width=4,6 depth=2,3 (as NDS samples sizes): every candidate's parameters come from the lists,
    both widths occur, and the run's config keeps the lists; a strategy search refuses --vary in one line."""
    import yaml

    args = ["--runs-dir", str(tmp_path), "--name", "r", "--generator", "nds-darts", *FAST, "--num-archs", "6",
            "--no-supervised", "--vary", "width=4,6", "depth=2,3"]
    assert main(args) == 0
    table = list(csv.DictReader((tmp_path / "r" / "results.csv").open()))
    sizes = {(ArchSpec.from_json(r["spec"]).params["width"], ArchSpec.from_json(r["spec"]).params["depth"])
             for r in table}
    assert len(table) == 6 and {w for w, _ in sizes} == {4, 6} and {d for _, d in sizes} <= {2, 3}
    cfg = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert cfg["model"]["vary"] == {"width": [4, 6], "depth": [2, 3]}


def test_vary_is_refused_by_a_strategy_search(tmp_path, capsys):
    from unnas.search.__main__ import main as search_main

    rc = search_main(["--strategy", "random", "--generator", "nds-darts", "--vary", "width=4,6", "--data", "digits",
                      "--runs-dir", str(tmp_path), "--num-archs", "2", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "--vary" in err
    assert not list(tmp_path.rglob("store.sqlite"))
