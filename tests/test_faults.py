"""Fault injection: NaN losses, exceptions, out of memory, time limits, dead workers, corrupt
checkpoints, and SIGKILLs of the runner at fixed-seed points followed by resumes.

This module doubles as a plugin (``--plugins test_faults`` with ``tests/`` on the path): it
registers the objective ``fault`` (rotation plus an injected fault) and provides
``crash_main``, which runs ``python -m unnas.rank`` and SIGKILLs its own process at the N-th
training step, checkpoint write or store commit.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from unnas.pretext.rotation import Rotation

from unnas.precision import cpu_bf16_fast
from unnas.registry import OBJECTIVES
from unnas.runner import stored_results

TESTS = Path(__file__).resolve().parent
# what train.precision=auto (the suite's default) trains in on this CPU
AUTO_PRECISION = "bfloat16" if cpu_bf16_fast() else "float32"
ROOT = TESTS.parent


@dataclass(frozen=True)
class FaultOptions:
    mode: str = "none"  # none | nan | raise | oom | kill | sleep
    at_step: int = 0  # training forward passes before the fault
    only_features: int = 0  # only backbones with this num_features (0 = every candidate)
    flag: str = ""  # "raise" only while this file exists ("" = always)
    seconds: float = 0.0  # "sleep"


class Fault(Rotation):
    """Rotation prediction that misbehaves on purpose."""

    name = "fault"

    def __init__(self, backbone, info, options=None):
        super().__init__(backbone, info, options)
        self.calls = 0

    def forward(self, images, labels=None, generator=None):
        out = super().forward(images, labels, generator)
        o = self.options
        if not self.training or o.only_features not in (0, self.backbone.num_features):
            return out
        self.calls += 1
        if self.calls <= o.at_step:
            return out
        if o.mode == "nan":
            out["loss"] = out["loss"] * float("nan")
        elif o.mode == "raise" and (not o.flag or Path(o.flag).exists()):
            raise RuntimeError("injected failure")
        elif o.mode == "oom":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        elif o.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif o.mode == "sleep":
            time.sleep(o.seconds)
        return out


if "fault" not in OBJECTIVES:  # imported twice (by pytest and as a plugin) in one process
    OBJECTIVES.register("fault", config=FaultOptions)(Fault)


# ------------------------------------------------------------------ helpers
TINY = ["data.name=fake", "data.image_size=8", "train.batch_size=64", "train.precise_bn=64", "eval.knn_k=20",
        "run.device=cpu", "model.generator=resnet"]


def tiny_cfg(*overrides: str):
    from unnas import config

    return config.load(None, [*TINY, *overrides])


def specs(*widths: int):
    from unnas.spec import ArchSpec

    return [ArchSpec("resnet", {"depths": [1, 1, 1], "width": w}, i) for i, w in enumerate(widths)]


def run_one(cfg, run_dir, width: int = 8, objective: str = "fault"):
    from unnas import config
    from unnas.runner import JobContext, job_config, plan_jobs, run_job

    cfg2 = config.replace(cfg, run={"pretext": objective, "supervised": False})
    (job,) = plan_jobs(cfg2, specs(width))
    return job, run_job(job, JobContext(job_config(cfg2, 1), str(run_dir), "cpu", 1))



# ------------------------------------------------------------------ failure isolation, one job
def test_nan_loss_is_stored_as_diverged_with_its_step(tmp_path):
    job, row = run_one(tiny_cfg("train.epochs=2", "fault.mode=nan", "fault.at_step=3"), tmp_path)
    assert row.status == "diverged"
    assert row.metrics == {"diverged_step": 3}  # steps 0, 1, 2 were fine; the 4th loss is NaN
    assert "at step 3" in row.error


def test_exception_is_failed_with_error_and_location(tmp_path):
    job, row = run_one(tiny_cfg("train.epochs=1", "fault.mode=raise"), tmp_path)
    assert row.status == "failed"
    assert row.error.startswith("RuntimeError: injected failure (test_faults.py:")
    assert "injected failure" in (tmp_path / "logs" / f"{job.job_id}.log").read_text()


def test_out_of_memory_is_failed_with_a_clear_reason(tmp_path):
    _, row = run_one(tiny_cfg("train.epochs=1", "fault.mode=oom"), tmp_path)
    assert row.status == "failed" and row.error.startswith("out of memory: CUDA out of memory")


def test_time_limit_is_timeout_and_keeps_checkpoints(tmp_path):
    from unnas.runner import checkpoint_dir, discard_checkpoints

    job, row = run_one(tiny_cfg("train.epochs=3", "train.time_limit=3", "fault.mode=sleep",
                                "fault.seconds=1", "fault.at_step=9"), tmp_path)
    assert row.status == "timeout" and "time limit of 3 s" in row.error
    ckpt = checkpoint_dir(tmp_path, job.job_id)
    assert (ckpt / "epoch_1.pt").is_file()  # epoch 1 (9 steps) ran before the sleeps began
    discard_checkpoints(tmp_path, row)
    assert ckpt.is_dir()  # --retry-failed resumes from it


# ------------------------------------------------------------------ resume inside a job
def _train(cfg, ckpt, objective="rotation"):
    from unnas.engine import train
    from unnas.objectives.base import DataInfo, build_objective
    from unnas.runner import dataset_for
    from unnas.spec import build

    data = dataset_for(cfg)
    torch.manual_seed(0)
    obj = build_objective(objective, build(specs(8)[0], 3), DataInfo.of(data), cfg.objectives.get(objective))
    torch.set_num_threads(1)
    try:
        res = train(obj, data.train, cfg.train, seed=5, checkpoint_dir=ckpt, log=_LOG.append)
    except RuntimeError as e:
        return None, str(e)
    return obj.state_dict(), res


_LOG: list[str] = []


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_resumed_job_is_bit_identical_even_after_a_damaged_checkpoint(tmp_path, damage):
    """Interrupt after epoch 2 of 3, damage the newest checkpoint, resume: same final weights,
    BN statistics and history as an uninterrupted run; a damaged file is reported and skipped."""
    ref, ref_res = _train(tiny_cfg("train.epochs=3"), tmp_path / "ref")
    ckpt = tmp_path / "ckpt"
    # 9 steps per epoch (576 images / 64); the failure at the 21st forward pass is in epoch 3
    state, err = _train(tiny_cfg("train.epochs=3", "fault.mode=raise", "fault.at_step=20"), ckpt, "fault")
    assert state is None and "injected" in err
    assert sorted(p.name for p in ckpt.glob("epoch_*.pt")) == ["epoch_1.pt", "epoch_2.pt"]
    newest = ckpt / "epoch_2.pt"
    if damage == "truncate":
        newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
    elif damage == "garbage":
        newest.write_bytes(b"not a checkpoint")
    _LOG.clear()
    got, res = _train(tiny_cfg("train.epochs=3"), ckpt)
    assert res.resumed_from_epoch == (2 if damage == "none" else 1)
    assert res.precision == AUTO_PRECISION  # bfloat16 on a CPU that has it: the fault suite runs in it
    assert any("skipping checkpoint" in m and "epoch_2.pt" in m for m in _LOG) == (damage != "none")
    assert got.keys() == ref.keys()
    for k in ref:
        assert torch.equal(got[k], ref[k]), k
    assert [h["loss"] for h in res.history] == [h["loss"] for h in ref_res.history]


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("objective", ["moco"])  # rotation: see the damaged-checkpoint cases
def test_interrupted_job_resumes_bit_identical(tmp_path, objective):
    """Stop inside epoch 3 (any objective: a progress callback raises), resume from the epoch-2
    checkpoint: weights, BN statistics, MoCo's key encoder and queue, history all equal."""
    from unnas.engine import train
    from unnas.objectives.base import DataInfo, build_objective
    from unnas.runner import dataset_for
    from unnas.spec import build

    cfg = tiny_cfg("train.epochs=3", "moco.queue_size=256")
    data = dataset_for(cfg)
    torch.set_num_threads(1)

    def make():
        torch.manual_seed(0)
        return build_objective(objective, build(specs(8)[0], 3), DataInfo.of(data), cfg.objectives.get(objective))

    ref = make()
    ref_res = train(ref, data.train, cfg.train, seed=5)

    def stop(step, total, info):
        if step == 21:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(make(), data.train, cfg.train, seed=5, checkpoint_dir=tmp_path, progress=stop)
    got = make()
    res = train(got, data.train, cfg.train, seed=5, checkpoint_dir=tmp_path)
    assert res.resumed_from_epoch == 2 and res.precision == ref_res.precision == AUTO_PRECISION
    want, have = ref.state_dict(), got.state_dict()
    if objective == "moco":
        assert any("queue" in k for k in want)
    assert have.keys() == want.keys()
    for k in want:
        assert torch.equal(have[k], want[k]), k
    assert res.history == [{**h, "seconds": g["seconds"]} for h, g in zip(ref_res.history, res.history)]


# ------------------------------------------------------------------ pool: a dying worker
def test_pool_worker_killed_fails_only_its_job(tmp_path, monkeypatch):
    from unnas import config
    from unnas.executors import Hooks, PoolExecutor
    from unnas.runner import EXECUTION_METRICS, JobContext, data_key, dataset_for, job_config, plan_jobs, run_job

    monkeypatch.syspath_prepend(str(TESTS))
    # width 8 -> 32 features: that candidate's worker kills itself at its second step
    cfg = config.replace(tiny_cfg("train.epochs=1", "fault.mode=kill", "fault.only_features=32", "fault.at_step=1"),
                         run={"pretext": "fault", "supervised": False})
    jobs = plan_jobs(cfg, specs(12, 8, 16))
    ctx = JobContext(job_config(cfg, 1), str(tmp_path), "cpu", 1, ("test_faults",))
    started = []
    pool = PoolExecutor(2, 1, dataset_for(cfg), data_key(cfg))
    rows = {r.job_id: r for r in pool.run(jobs, ctx, Hooks(on_start=lambda j: started.append(j.job_id)))}
    assert sorted(started) == sorted(j.job_id for j in jobs)
    assert [rows[j.job_id].status for j in jobs] == ["done", "failed", "done"]
    assert rows[jobs[1].job_id].error.startswith("worker process killed by SIGKILL")
    kept = {w.proc.pid for w in pool.idle}  # the live workers wait for the next run (a round)
    assert len(kept) in (1, 2) and all(w.proc.is_alive() for w in pool.idle)
    again = list(pool.run(jobs[2:], ctx))
    assert again[0].status == "done" and {w.proc.pid for w in pool.idle} <= kept  # no new worker started
    workers = list(pool.idle)
    pool.close()
    assert not pool.idle and not any(w.proc.is_alive() for w in workers)
    for j in (jobs[0], jobs[2]):  # the same numbers in this process (resuming from the pool's checkpoint)
        local = run_job(j, ctx)
        drop = lambda m: {k: v for k, v in m.items() if k not in EXECUTION_METRICS}  # noqa: E731
        assert drop(rows[j.job_id].metrics) == drop(local.metrics)


# ------------------------------------------------------------------ a whole run
def test_run_lists_failures_and_retry_failed_reruns_only_them(tmp_path, capsys):
    from unnas.rank import main

    flag = tmp_path / "broken"
    flag.write_text("")
    argv = ["--runs-dir", str(tmp_path), "--name", "r", "--num-archs", "2", "--pretext", "rotation,fault",
            "--no-supervised", "--params", "width=8", "--quiet", "--plugins", "test_faults", *TINY,
            "train.epochs=1", "fault.mode=raise", f"fault.flag={flag}"]
    sys.path.insert(0, str(TESTS))
    try:
        assert main(argv) == 0
        store = tmp_path / "r" / "store.sqlite"
        first = _rows(store)
        assert sorted(s for s, _ in first.values()) == ["done", "done", "failed", "failed"]
        ranking = json.loads((tmp_path / "r" / "ranking.json").read_text())
        assert sorted(f["objective"] for f in ranking["failed"]) == ["fault", "fault"]
        assert "failed" in capsys.readouterr().out
        assert main(argv) == 0  # a plain rerun keeps the failed rows
        assert _rows(store) == first
        flag.unlink()  # the cause is gone
        assert main([*argv, "--retry-failed"]) == 0
        after = _rows(store)
    finally:
        sys.path.remove(str(TESTS))
    for job_id, (status, finished) in first.items():
        if status == "done":
            assert after[job_id] == (status, finished)  # not run again
        else:
            assert after[job_id][0] == "done" and after[job_id][1] > finished


def _rows(store: Path) -> dict:
    con = sqlite3.connect(str(store))
    try:
        return {j: (s, f) for j, s, f in con.execute("SELECT job_id, status, finished_at FROM jobs")}
    finally:
        con.close()


# ------------------------------------------------------------------ SIGKILL the runner and resume
def crash_main(point: str, n: int, argv: list[str], main=None) -> int:
    """Run ``python -m unnas.rank argv`` (or another entry point ``main``, e.g. ``unnas.search``'s)
    and SIGKILL this process at the ``n``-th event of ``point``:
    ``step`` (after a training step), ``ckpt`` (half-way through writing a checkpoint's temporary
    file), ``ckpt-final`` (a truncated file at the checkpoint's final path, as a non-atomic file
    system could leave it), ``store`` (inside the store transaction, before its commit)."""
    import unnas.engine as engine
    import unnas.runner as runner
    import unnas.store as store_mod

    if main is None:
        from unnas.rank import main
    count = [0]

    def hit() -> bool:
        count[0] += 1
        return count[0] >= n

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "step":
        run_job = runner.run_job

        def patched_run_job(job, ctx, on_step=None, on_log=None):
            def step(s, t, info):
                if hit():
                    die()
                if on_step:
                    on_step(s, t, info)
            return run_job(job, ctx, step, on_log)

        runner.run_job = patched_run_job
    elif point in ("ckpt", "ckpt-final"):
        save = engine.save_atomic

        def patched_save(obj, path):
            if "checkpoints" in str(path) and hit():
                buf = io.BytesIO()
                torch.save(obj, buf)
                data = buf.getvalue()
                target = path if point == "ckpt-final" else path.with_name(f".{path.name}.tmp{os.getpid()}")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data[: len(data) // 2])
                die()
            save(obj, path)

        engine.save_atomic = patched_save
    elif point == "store":
        def patched_put(self, row):
            if hit():
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute("INSERT OR REPLACE INTO jobs (job_id, arch_id, spec, generator, objective, seed, "
                                  "status) VALUES (?,?,?,?,?,?,?)", (row.job_id, row.arch_id, row.spec,
                                                                     row.generator, row.objective, row.seed, "done"))
                die()
            return put(self, row)

        put = store_mod.Store.put
        store_mod.Store.put = patched_put
    else:
        raise ValueError(point)
    return main(argv)


KILL_ARGS = ["--num-archs", "3", "--params", "width=8", "--quiet", *TINY, "train.epochs=3"]


def _argv(run_dir: Path, extra: list[str], executor: str = "local") -> list[str]:
    return ["--runs-dir", str(run_dir.parent), "--name", run_dir.name, "--executor", executor, *KILL_ARGS, *extra]


def _cli(run_dir: Path, extra: list[str], crash: tuple[str, int] | None = None, wait: float | None = None,
         executor: str = "local") -> int:
    argv = _argv(run_dir, extra, executor)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    if crash is None:
        cmd = [sys.executable, "-m", "unnas.rank", *argv]
    else:
        cmd = [sys.executable, "-c", "import sys, test_faults as t; sys.exit(t.crash_main(sys.argv[1], "
               "int(sys.argv[2]), sys.argv[3:]))", crash[0], str(crash[1]), *argv]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if wait is not None:  # an external SIGKILL after `wait` seconds
        try:
            p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            children = _children(p.pid)
            p.send_signal(signal.SIGKILL)
            p.wait()
            _assert_gone(children)
            return -9
    _, err = p.communicate(timeout=300)
    if p.returncode not in (0, -9):
        raise AssertionError(err.decode()[-2000:])
    return p.returncode


def _forked(run_dir: Path, extra: list[str], crash: tuple[str, int] | None = None) -> int:
    """Like :func:`_cli` (without external kills) in a child forked from this process: a real
    separate process that SIGKILLs itself, without paying the interpreter start-up again."""
    return run_forked(_argv(run_dir, extra), crash)


def run_forked(argv: list[str], crash: tuple[str, int] | None = None, entry: str = "unnas.rank") -> int:
    """``main(argv)`` of the module ``entry`` in a forked child, killed at ``crash`` (see :func:`crash_main`)."""
    import multiprocessing

    p = multiprocessing.get_context("fork").Process(target=_child, args=(crash, argv, entry))
    p.start()
    p.join(timeout=300)
    if p.exitcode not in (0, -9):
        raise AssertionError(f"runner exited with {p.exitcode}")
    return p.exitcode


def _child(crash, argv, entry: str = "unnas.rank") -> None:
    import importlib

    main = importlib.import_module(entry).main
    sys.stdout = open(os.devnull, "w")
    code = main(argv) if crash is None else crash_main(crash[0], crash[1], argv, main=main)
    sys.stdout.flush()
    os._exit(code)


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _assert_gone(pids: list[int], timeout: float = 10.0) -> None:
    """Pool workers die with their driver (no orphan keeps writing the run folder)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and "Z" not in _state(p)]
        if not alive:
            return
        time.sleep(0.1)
    raise AssertionError(f"worker processes {alive} outlived the killed driver")


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def _kill_and_resume(tmp_path: Path, plan: list[tuple], extra: list[str], fork: bool = False,
                     n_jobs: int | None = None) -> int:
    """Run ``plan`` (kill point, n, executor) on one run folder, then finish it; compare with an
    uninterrupted run. Returns the number of runs that were killed."""
    from unnas.rank import main

    ref_dir = tmp_path / "ref"
    assert main(_argv(ref_dir, extra)) == 0  # uninterrupted, in this process
    ref = stored_results(ref_dir / "store.sqlite")
    assert len(ref) == (n_jobs or (6 if "--no-supervised" not in extra else 3))
    assert all(s == "done" for s, _ in ref.values())
    run_dir = tmp_path / "killed"
    kills = 0
    for point, n, executor in plan:
        if point == "external":
            code = _cli(run_dir, extra, wait=n, executor=executor)
        elif fork:
            code = _forked(run_dir, extra, crash=(point, n))
        else:
            code = _cli(run_dir, extra, crash=(point, n), executor=executor)
        kills += code == -9
        if run_dir.joinpath("store.sqlite").exists():
            got = stored_results(run_dir / "store.sqlite")
            assert set(got) <= set(ref)
            assert all(got[j] == ref[j] for j in got)  # every stored row is already the final one
    assert (_forked(run_dir, extra) if fork else _cli(run_dir, extra)) == 0
    got = stored_results(run_dir / "store.sqlite")
    assert got == ref  # none lost, none extra, bit-identical metrics
    jobs = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    committed = [e["job_id"] for e in jobs if e["event"] == "job"]
    assert sorted(set(committed)) == sorted(ref)
    assert len(committed) == len(ref)  # each job committed exactly once over all the runs
    assert not list((run_dir / "checkpoints").glob("*/epoch_*.pt"))  # cleaned after commit
    return kills


def test_sigkill_and_resume_short(tmp_path):
    """Three kills (of a forked runner): mid-job, mid-checkpoint-write, inside the store transaction."""
    kills = _kill_and_resume(tmp_path, [("step", 14, "local"), ("ckpt", 2, "local"), ("store", 1, "local")],
                             ["--no-supervised"], fork=True)
    assert kills == 3


SH = ["--no-supervised", "--budget", "sh", "--rungs", "1,2,3", "--eta", "2"]  # 3 + 2 + 1 rung jobs


def test_successive_halving_killed_at_seeded_points_ends_with_the_uninterrupted_rows(tmp_path):
    """Successive halving killed mid-rung, mid-checkpoint and inside a commit (points from a fixed
    seed), then rerun: exactly the rows of an uninterrupted run, no job committed twice."""
    rng = np.random.default_rng(7)
    plan = [("step", int(rng.integers(3, 7)), "local"), ("ckpt", int(rng.integers(1, 3)), "local"),
            ("store", int(rng.integers(1, 3)), "local")]  # 6 epochs of 2 steps: every kill point is reached
    assert _kill_and_resume(tmp_path, plan, SH, fork=True, n_jobs=6) == 3


PROXY_FIRST = ["--no-supervised", "--proxies", "naswot", "--ensemble", "rotation,naswot", "--budget", "sh", "--rungs",
               "0,2,3", "--eta", "2", "budget.score=ensemble(rotation+naswot)"]  # 3 proxy + 2 + 1 training jobs


def test_proxy_first_halving_killed_at_seeded_points_ends_with_the_uninterrupted_rows(tmp_path):
    """Proxy-first successive halving (rung 0 runs only the proxy; the survivors train, ranked by the
    rank ensemble of the proxy and the trained score), killed mid-rung, mid-checkpoint and inside a
    commit, then rerun: exactly the rows of an uninterrupted run, no job committed twice."""
    rng = np.random.default_rng(8)
    plan = [("step", int(rng.integers(2, 6)), "local"), ("ckpt", int(rng.integers(1, 3)), "local"),
            ("store", int(rng.integers(1, 4)), "local")]  # 5 epochs of 2 steps: every kill point is reached
    assert _kill_and_resume(tmp_path, plan, PROXY_FIRST, fork=True, n_jobs=6) == 3
    from unnas.store import Store

    with Store(tmp_path / "ref" / "store.sqlite") as st:
        rows = sorted((r.objective, int(r.metrics.get("epochs", 0) or 0)) for r in st.rows())
    assert rows == [("naswot", 0)] * 3 + [("rotation", 2)] * 2 + [("rotation", 3)]


@pytest.mark.slow
def test_sigkill_and_resume_at_twelve_seeded_points(tmp_path):
    """Twelve kills at points drawn from a fixed seed (steps, checkpoint writes, truncated final
    checkpoint files, store commits, external SIGKILLs of a pool driver), resuming each time."""
    rng = np.random.default_rng(20240607)
    points = ["step", "step", "step", "ckpt", "ckpt", "ckpt-final", "ckpt-final", "store", "store", "step"]
    plan = []
    for p in points:
        n = int(rng.integers(1, 4)) if p == "store" else int(rng.integers(1, 25 if p == "step" else 5))
        plan.append((p, n, "local"))
    plan += [("external", float(rng.uniform(8, 14)), "pool"), ("external", float(rng.uniform(8, 14)), "pool")]
    assert _kill_and_resume(tmp_path, plan, []) >= 10


def test_run_finishes_when_a_candidate_has_no_finished_job(tmp_path):
    """One candidate fails everywhere (no complexity, no score): the ranking still completes."""
    from unnas.population import sample_population
    from unnas.rank import main
    from unnas.spec import build

    specs_ = sample_population("resnet", 2, 0, {}, in_channels=3, image_size=8)
    feats = [build(s, 3).num_features for s in specs_]
    assert feats[0] != feats[1]
    argv = ["--runs-dir", str(tmp_path), "--name", "r", "--num-archs", "2", "--pretext", "fault", "--no-supervised",
            "--quiet", *TINY, "train.epochs=1", "fault.mode=raise", f"fault.only_features={feats[0]}"]
    assert main(argv) == 0
    ranking = json.loads((tmp_path / "r" / "ranking.json").read_text())
    assert ranking["status"]["failed"] == 1 and ranking["status"]["done"] == 1
    assert [f["arch_id"] for f in ranking["failed"]] == [specs_[0].arch_id]
