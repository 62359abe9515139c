"""Nothing a user gives us can run code: checkpoints load with ``weights_only=True``, configs
with safe YAML, and every name and path is checked before work starts (exit 2, one line)."""

from __future__ import annotations

import builtins
import importlib.util
from pathlib import Path

import pytest
import torch

from unnas.engine import latest_checkpoint, load_checkpoint
from unnas.errors import UserError


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears if the pickle is executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"objective": {"w": torch.zeros(2)}, "epoch": 7, "step": 70, "evil": Payload(marker)}, path)
    return path


def test_the_payload_is_live(tmp_path):
    """The test file really runs code under an unsafe load (so the refusal below means something)."""
    marker = tmp_path / "pwned"
    malicious_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def test_malicious_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = malicious_checkpoint(tmp_path / "epoch_7.pt", marker)
    with pytest.raises(UserError) as e:
        load_checkpoint(path)
    assert "refused or unreadable" in str(e.value) and str(path) in str(e.value)
    assert not marker.exists()
    notes = []
    assert latest_checkpoint(tmp_path, notes.append) is None  # skipped, reported
    assert "skipping checkpoint" in notes[0]
    assert not marker.exists()


def test_job_with_a_malicious_checkpoint_trains_from_scratch(tmp_path):
    from unnas import config
    from unnas.runner import JobContext, checkpoint_dir, job_config, plan_jobs, run_job
    from unnas.spec import ArchSpec

    cfg = config.load(None, ["data.name=fake", "data.image_size=8", "train.epochs=1", "train.batch_size=64",
                             "train.precise_bn=0", "eval.knn_k=10", "run.supervised=false"])
    (job,) = plan_jobs(cfg, [ArchSpec("resnet", {"depths": [1, 1, 1], "width": 8}, 0)])
    marker = tmp_path / "pwned"
    ckpt = checkpoint_dir(tmp_path, job.job_id)
    ckpt.mkdir(parents=True)
    malicious_checkpoint(ckpt / "epoch_5.pt", marker)
    row = run_job(job, JobContext(job_config(cfg, 1), str(tmp_path), "cpu", 1))
    assert row.status == "done" and row.metrics["resumed_from_epoch"] == 0
    assert not marker.exists()
    log = (tmp_path / "logs" / f"{job.job_id}.log").read_text()
    assert "skipping checkpoint" in log and "epoch_5.pt" in log


def test_yaml_config_cannot_construct_objects(tmp_path):
    from unnas import config

    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"train:\n  epochs: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
    with pytest.raises(UserError, match="not valid YAML"):
        config.load(bad)
    assert not marker.exists()


@pytest.mark.parametrize("args, field", [
    (["--name", "../outside"], "--name"),
    (["--name", "a/b"], "--name"),
    (["--executor", "threads"], "--executor"),
    (["--workers", "-1"], "--workers"),
    (["--threads-per-worker", "-2"], "--threads-per-worker"),
    # without Ray installed the executor itself is refused first
    (["--executor", "ray", "--ray-address", "not an address"],
     "--ray-address" if importlib.util.find_spec("ray") else "--executor"),
    (["--plugins", "no_such_module_xyz"], "--plugins"),
    (["train.time_limit=-1"], "train.time_limit"),
    (["--config", "/no/such/file.yaml"], "--config"),
])
def test_bad_names_and_paths_exit_2_before_any_work(tmp_path, args, field, capsys):
    from unnas.rank import main

    code = main(["--runs-dir", str(tmp_path / "runs"), "--data", "fake", "--generator", "resnet", "--num-archs", "1",
                 "--quiet", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"error: {field}") and "\n" not in err
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").rglob("store.sqlite"))
    assert not (tmp_path / "outside").exists()


def test_unwritable_runs_dir_is_refused(tmp_path, capsys):
    from unnas.rank import main

    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["--runs-dir", str(blocker), "--data", "fake", "--generator", "resnet", "--num-archs", "1", "--quiet"])
    assert code == 2 and "--runs-dir" in capsys.readouterr().err

