import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from unnas.eval.samplers import class_balanced, instance_balanced

import unnas.longtail_run as lt_run
from unnas.config import DataConfig
from unnas.data import load_dataset, longtail_counts
from unnas.longtail import build_config, main, parser

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--data", "fake-lt", "--imbalance", "10", "--params", "depths=[1,1]", "width=8", "--epochs", "2",
        "--crt-epochs", "2", "--lws-epochs", "2", "--batch-size", "32", "data.image_size=8", "--quiet"]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch, tmp_path):
    """Small problems: one intra-op thread (no OpenMP spin-waiting); a private feature cache."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("UNNAS_CACHE", str(tmp_path / "cache"))
    yield
    torch.set_num_threads(n)


def run_cli(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def only_run_dir(runs: Path) -> Path:
    dirs = [d for d in runs.iterdir() if d.is_dir()]
    assert len(dirs) == 1
    return dirs[0]


def test_exponential_profile_counts():
    # Cao et al. 2019, CIFAR-10-LT with rho = 100
    assert longtail_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    # the training-set sizes reported for CIFAR-10-LT / CIFAR-100-LT at rho = 100
    assert sum(longtail_counts(5000, 10, 100)) == 12406
    c100 = longtail_counts(500, 100, 100)
    assert sum(c100) == 10847 and c100[0] == 500 and c100[-1] == 5


def test_long_tailed_split_follows_the_profile_and_val_is_balanced():
    data = load_dataset(DataConfig(name="fake-lt", imbalance=10, image_size=8, val_fraction=0.1))
    counts = data.train.class_counts(10)
    assert counts == longtail_counts(max(counts), 10, 10)
    assert len(set(data.val.class_counts(10))) == 1 and len(set(data.test.class_counts(10))) == 1


def test_cli_end_to_end_writes_table_csv_json_and_counts(tmp_path, capsys):
    runs = tmp_path / "runs"
    code, out, err = run_cli(TINY + ["--runs-dir", str(runs)], capsys)
    assert code == 0, err
    for word in ("Many", "Medium", "Few", "All", "Joint", "NCM", "cRT", "tau-norm", "LWS", "thresholds:"):
        assert word in out
    run_dir = only_run_dir(runs)
    rows = list(csv.DictReader(open(run_dir / "results.csv")))
    assert [r["method"] for r in rows] == ["joint", "ncm", "crt", "tau_norm", "lws"]
    res = json.loads((run_dir / "results.json").read_text())
    counts = json.loads((run_dir / "class_counts.json").read_text())
    assert counts["train"] == counts["profile"] == longtail_counts(counts["train"][0], 10, 10)
    assert counts["imbalance"] == 10
    arch = next(iter(res["results"].values()))
    assert arch["train_counts"] == counts["train"]
    assert arch["joint_source"].startswith("stage-1 linear head")
    assert 0 <= arch["methods"]["tau_norm"]["tau"] <= 2
    assert (run_dir / "models").is_dir() and (run_dir / "log.jsonl").is_file()
    # a rerun reuses the stage-1 weights and the cached features: identical numbers
    code, out2, err = run_cli(TINY + ["--runs-dir", str(runs)], capsys)
    assert code == 0 and "reusing" in out2
    res2 = json.loads((run_dir / "results.json").read_text())
    assert next(iter(res2["results"].values()))["methods"] == arch["methods"]
    # the saved model as --checkpoint in a new run folder gives the same numbers again
    model = next((run_dir / "models").glob("*.pt"))
    code, out3, err = run_cli(TINY + ["--runs-dir", str(runs), "--name", "from-ckpt", "--checkpoint", str(model)],
                              capsys)
    assert code == 0, err
    res3 = json.loads((runs / "from-ckpt" / "results.json").read_text())
    assert next(iter(res3["results"].values()))["methods"] == arch["methods"]


def test_label_free_pretext_uses_an_instance_balanced_probe_as_joint(tmp_path, capsys):
    code, out, err = run_cli(TINY + ["--pretext", "rotation", "--runs-dir", str(tmp_path / "runs")], capsys)
    assert code == 0, err
    assert "linear probe" in out and "instance-balanced" in out
    res = json.loads((only_run_dir(tmp_path / "runs") / "results.json").read_text())
    assert res["label_free_joint"] is True
    assert "instance-balanced" in next(iter(res["results"].values()))["joint_source"]


def test_population_reports_spearman_between_methods(tmp_path, capsys):
    runs = tmp_path / "runs"
    varying_width = [a for a in TINY if a != "width=8"]  # equal ResNets share one arch_id: let the width vary
    code, out, err = run_cli(varying_width + ["--num-archs", "3", "--runs-dir", str(runs), "--epochs", "1"], capsys)
    assert code == 0, err
    assert "Spearman between methods over 3 architectures" in out
    res = json.loads((only_run_dir(runs) / "results.json").read_text())
    assert len(res["results"]) == 3
    rk = res["rankings"]["all"]
    assert set(rk["spearman"]) == {"joint", "ncm", "crt", "tau_norm", "lws"}
    for m, row in rk["spearman"].items():
        assert row[m] in (1.0, None)  # a method agrees with itself (None: constant accuracies)
    assert len(rk["values"]["joint"]) == 3


def test_stage1_sampler_reaches_the_engine(tmp_path, monkeypatch, capsys):
    seen = []
    real = lt_run.train

    def spy(*args, sampler=None, **kwargs):
        seen.append(sampler)
        return real(*args, sampler=sampler, **kwargs)

    monkeypatch.setattr(lt_run, "train", spy)
    assert run_cli(TINY + ["--runs-dir", str(tmp_path / "a"), "--sampler", "class"], capsys)[0] == 0
    assert run_cli(TINY + ["--runs-dir", str(tmp_path / "b")], capsys)[0] == 0
    assert seen == [class_balanced, instance_balanced]


@pytest.mark.parametrize("args, field", [
    (["--pretext", "nope"], "--pretext"),
    (["--pretext", "rotation", "--sampler", "class"], "--sampler"),
    (["--sampler", "uniform"], "--sampler"),
    (["--shot-thresholds", "5,50"], "--shot-thresholds"),
    (["stage2.crt_speed=2"], "override"),
    (["stage2.crt_lr=fast"], "override"),
    (["--checkpoint", "/nonexistent.pt"], "--checkpoint"),
    (["--generator", '{"generator": "resnet", "params": {"width": 8}}', "--num-archs", "2"], "--num-archs"),
    (["--data", "nodata-lt"], "--data"),
    (["--generator", "nonet"], "generator"),
    (["--generator", '{"generator": "resnet", "params": {"widthh": 8}}'], "generator resnet parameter"),
])
def test_bad_input_is_one_line_and_exit_2(args, field, tmp_path, capsys):
    code, out, err = run_cli(TINY + ["--runs-dir", str(tmp_path / "runs")] + args, capsys)
    assert code == 2
    assert err.startswith(f"error: {field}") and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()  # rejected before anything is written


def test_checkpoint_from_another_objective_is_refused(tmp_path, capsys):
    assert run_cli(TINY + ["--runs-dir", str(tmp_path / "a")], capsys)[0] == 0
    model = next((only_run_dir(tmp_path / "a") / "models").glob("*.pt"))
    code, out, err = run_cli(TINY + ["--runs-dir", str(tmp_path / "b"), "--pretext", "rotation",
                                     "--checkpoint", str(model)], capsys)
    assert code == 2 and "supervised" in err


@pytest.mark.slow
def test_digits_lt_with_default_settings_as_a_subprocess(tmp_path):
    env = {**os.environ, "UNNAS_CACHE": str(tmp_path / "cache")}
    p = subprocess.run([sys.executable, "-m", "unnas.longtail", "--runs-dir", str(tmp_path), "--quiet"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "Joint" in p.stdout and "LWS" in p.stdout


def _cifar_tree():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from longtail_cifar import cifar_tree

    return cifar_tree()


@pytest.mark.slow
def test_real_cifar10_lt_counts():
    tree = _cifar_tree()
    if tree is None:
        pytest.skip("CIFAR-10 archive not available")
    data = load_dataset(DataConfig(name="imagefolder-lt", root=str(tree), imbalance=100, val_fraction=0.0))
    assert data.train.class_counts(10) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert data.test.class_counts(10) == [1000] * 10


@pytest.mark.slow
def test_cifar10_lt_stage2_methods_beat_joint(tmp_path):
    """The paper's central result on CIFAR-10-LT (rho = 100); about 10-15 CPU minutes."""
    if _cifar_tree() is None:
        pytest.skip("CIFAR-10 archive not available")
    from longtail_cifar import run

    out = run(runs_dir=str(tmp_path))
    for m in ("crt", "tau_norm", "lws"):
        assert out["beats_joint"][m] == {"few": True, "all": True}, out["table"]


@pytest.mark.parametrize("flags,epochs,data", [([], 200, "cifar10-lt"), (["--epochs", "3"], 3, "cifar10-lt"),
                                               (["--data", "digits-lt"], 200, "digits-lt")])
def test_the_config_file_beats_the_commands_defaults_and_its_flags_beat_the_file(flags, epochs, data):
    """The command's own defaults (100 epochs on digits-lt) sit below a --config file; given flags win."""
    args = parser().parse_args(["--config", str(ROOT / "configs" / "cifar10-lt-decoupled.yaml"), *flags])
    cfg = build_config(args, [])
    assert (cfg.train.epochs, cfg.data.name, cfg.train.batch_size) == (epochs, data, 128)


def test_without_a_file_the_commands_own_defaults_apply():
    cfg = build_config(parser().parse_args([]), [])
    assert (cfg.train.epochs, cfg.data.name, cfg.run.pretext, cfg.model.generator, cfg.run.num_archs) == (
        100, "digits-lt", "supervised", "resnet", 1)
