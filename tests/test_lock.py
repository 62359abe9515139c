"""Run-folder lock: one owner, a clear refusal naming it, stale locks taken over, --join claims."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from unnas.errors import UserError
from unnas.lock import Claims, LockedError, RunLock, pid_alive, read_holders

ROOT = Path(__file__).resolve().parents[1]


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_pid_alive():
    assert pid_alive(os.getpid())
    assert not pid_alive(dead_pid())
    assert not pid_alive(0) and not pid_alive(-5)


def test_second_lock_is_refused_naming_the_owner(tmp_path):
    with RunLock(tmp_path) as first:
        (holder,) = read_holders(first.path)
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(LockedError) as e:
            RunLock(tmp_path).acquire()  # flock is per open file: refused even in this process
        msg = str(e.value)
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in msg
        assert isinstance(e.value, UserError)
    RunLock(tmp_path).acquire().release()  # free again after release
    assert read_holders(tmp_path / ".lock") == []


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    pid = dead_pid()
    (tmp_path / ".lock").write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "mode": "exclusive",
                                                "since": "yesterday"}) + "\n")
    notes = []
    lock = RunLock(tmp_path, log=notes.append).acquire()
    try:
        assert [h["pid"] for h in lock.took_over] == [pid]
        assert f"pid {pid}" in notes[0] and "no longer running" in notes[0]
        assert [h["pid"] for h in read_holders(lock.path)] == [os.getpid()]
    finally:
        lock.release()


def test_lock_of_a_killed_runner_is_free(tmp_path):
    """The kernel drops the flock of a SIGKILLed holder: the folder is usable at once."""
    code = textwrap.dedent(f"""
        import sys, time
        from unnas.lock import RunLock
        RunLock({str(tmp_path)!r}).acquire()
        print("locked", flush=True)
        time.sleep(60)
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"pid {p.pid} "):
            RunLock(tmp_path).acquire()
    finally:
        p.kill()
        p.wait()
    lock = RunLock(tmp_path).acquire()
    assert [h["pid"] for h in lock.took_over] == [p.pid]
    lock.release()


def test_join_shares_and_excludes_exclusive(tmp_path):
    a = RunLock(tmp_path, shared=True).acquire()
    b = RunLock(tmp_path, shared=True).acquire()
    with pytest.raises(LockedError, match="--join"):
        RunLock(tmp_path).acquire()
    a.release()
    b.release()
    ex = RunLock(tmp_path).acquire()
    with pytest.raises(LockedError, match="--join"):
        RunLock(tmp_path, shared=True).acquire()
    ex.release()


def test_claims_are_exclusive_until_released(tmp_path):
    mine, theirs = Claims(tmp_path), Claims(tmp_path)
    assert mine.claim("job1") and mine.claim("job1")  # idempotent for the holder
    assert not theirs.claim("job1")
    assert theirs.claim("job2")
    mine.release("job1")
    assert theirs.claim("job1")
    theirs.release_all()
    assert mine.claim("job2")


ARGS = ["--data", "fake", "--generator", "resnet", "--params", "width=8", "--num-archs", "2", "--no-supervised",
        "--quiet", "data.image_size=8", "train.epochs=1", "train.batch_size=64", "eval.knn_k=20",
        "train.precise_bn=64", "--device", "cpu"]


def test_second_runner_exits_2_naming_the_owner(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    with RunLock(run_dir):
        p = subprocess.run([sys.executable, "-m", "unnas.rank", "--runs-dir", str(tmp_path), "--name", "r", *ARGS],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2
    line = p.stderr.strip()
    assert line.count("\n") == 0
    assert line.startswith("error: run folder: in use by ")
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in line
    assert not (run_dir / "store.sqlite").exists()  # refused before anything was written


@pytest.mark.slow
def test_joined_runners_split_the_jobs(tmp_path):
    """Two runners with --join on one folder: every job runs exactly once, both finish."""
    args = ["--runs-dir", str(tmp_path), "--name", "j", *ARGS, "--num-archs", "4", "--join"]  # the last one wins
    procs = []
    for _ in range(2):
        procs.append(subprocess.Popen([sys.executable, "-m", "unnas.rank", *args], cwd=ROOT,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        time.sleep(1.0)
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    events = [json.loads(x) for x in (tmp_path / "j" / "log.jsonl").read_text().splitlines()]
    ran = [e["job_id"] for e in events if e["event"] == "job"]
    assert len(ran) == 4 and len(set(ran)) == 4
    starts = [e for e in events if e["event"] == "run_start"]
    assert len({e["pid"] for e in starts}) == 2
