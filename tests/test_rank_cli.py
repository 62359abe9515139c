"""End-to-end behaviour of ``python -m unnas.rank``: bad input, a tiny run, kill and resume."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unnas.rank import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.image_size=8", "data.subset_per_class=8", "train.precise_bn=0", "--data", "fake",
        "--generator", "resnet", "--steps", "2", "--batch-size", "16", "--quiet", "--params", "depths=[1]"]


@pytest.mark.parametrize("args, field", [
    (["--generator", "no-such-net"], "generator"),
    (["--data", "no-such-data"], "--data"),
    (["--pretext", "no-such-task"], "objective"),
    (["--epochs", "-1"], "--epochs"),
    (["--num-archs", "0"], "--num-archs"),
    (["--data", "mnist", "--data-root", "/nonexistent/mnist"], "data.root"),
    (["train.nope=1"], "train.nope"),
    (["--device", "tpu"], "--device"),
])
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, args, field):
    code = main(["--runs-dir", str(tmp_path / "runs"), "--quiet", *args])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and field in err
    assert not list(tmp_path.rglob("store.sqlite"))


def test_unknown_pretext_lists_registered(tmp_path, capsys):
    assert main(["--runs-dir", str(tmp_path), "--pretext", "nope"]) == 2
    err = capsys.readouterr().err
    assert "rotation" in err and "supervised" in err


def test_unwritable_run_folder(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["--runs-dir", str(blocker / "runs"), "--num-archs", "3", *TINY]) == 2
    err = capsys.readouterr().err
    assert "--runs-dir" in err and len(err.strip().splitlines()) == 1


def _run(tmp_path, *extra, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "unnas.rank", "--runs-dir", str(tmp_path), "--name", "r",
                             *TINY, *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **kw)


def _rows(db):
    if not Path(db).is_file():
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT job_id, status, finished_at FROM jobs").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def test_tiny_run_end_to_end_then_rerun_skips_everything(tmp_path):
    p = _run(tmp_path, "--num-archs", "3")
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    run = tmp_path / "r"
    assert "Spearman rho" in out and "Kendall tau" in out and "ranking" in out
    for f in ("store.sqlite", "results.csv", "config.yaml", "log.jsonl", "ranking.json", "scatter_rotation.png"):
        assert (run / f).is_file(), f
    rows = _rows(run / "store.sqlite")
    assert len(rows) == 6 and {s for _, s, _ in rows} == {"done"}
    ranking = json.loads((run / "ranking.json").read_text())
    assert ranking["agreement"]["rotation"]["n"] == 3
    p = _run(tmp_path, "--num-archs", "3")
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0 and "6 already stored, 0 to run" in out
    assert _rows(run / "store.sqlite") == rows


def test_sigkill_midway_then_resume_loses_and_repeats_nothing(tmp_path):
    # The kill must land while jobs are still to run. Each worker's first job pays the start-up
    # (about 3 s) and later ones only their steps, so a job gets 60 steps (about 0.5 s) to leave the
    # 0.2 s poll room; a kill that still comes too late is tried again in a fresh folder.
    for attempt in range(4):
        runs = tmp_path / f"try{attempt}"
        db = runs / "r" / "store.sqlite"
        p = _run(runs, "--num-archs", "3", "--steps", "60", start_new_session=True)
        deadline = time.time() + 300
        while time.time() < deadline and len(_rows(db)) < 2:
            time.sleep(0.2)
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        before = {j: (s, t) for j, s, t in _rows(db)}
        if len(before) < 6:
            break
    assert 2 <= len(before) < 6, "the kill must land midway"
    tmp_path = runs
    p = _run(tmp_path, "--num-archs", "3", "--steps", "60")
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out
    after = {j: (s, t) for j, s, t in _rows(db)}
    assert len(after) == 6 and all(s == "done" for s, _ in after.values())
    assert all(after[j] == before[j] for j in before)  # finished jobs were not rerun
    events = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    finished = [e["job_id"] for e in events if e["event"] == "job"]
    assert len(finished) == len(set(finished))  # no job ran twice (the kill may land between store and log)
    assert set(after) - set(before) <= set(finished) <= set(after)
