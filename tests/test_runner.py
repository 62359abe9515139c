"""Executors: thread and worker defaults, addresses, the claim hook, dead-worker reasons, and the
same results on local, pool and Ray executors."""

from __future__ import annotations

import signal

import pytest

from unnas import config
from unnas.errors import UserError
from unnas.executors import Hooks, LocalExecutor, _exit_reason, check_ray_address, resolve_parallelism
from unnas.runner import JobContext, job_config, plan_jobs, stored_results
from unnas.spec import ArchSpec

TINY = ["data.name=fake", "data.image_size=8", "train.batch_size=64", "train.epochs=1", "train.precise_bn=64",
        "eval.knn_k=20", "run.device=cpu", "model.generator=resnet"]


def cfg_with(*overrides: str):
    return config.load(None, [*TINY, *overrides])


@pytest.mark.parametrize("overrides, cores, want", [
    (["run.executor=local"], 2, (1, 1)),  # local, deterministic: one thread per job
    (["run.executor=local", "train.deterministic=false"], 8, (1, 0)),  # local, free: torch's default
    (["run.executor=pool"], 2, (2, 1)),  # pool: cores // 1
    (["run.executor=pool", "run.threads_per_worker=2"], 8, (4, 2)),
    (["run.executor=pool", "run.threads_per_worker=3"], 8, (2, 3)),
    (["run.executor=pool", "run.workers=3"], 2, (3, 1)),  # explicit, even oversubscribed
    (["run.executor=pool", "train.threads=2"], 4, (2, 2)),  # train.threads when the run option is unset
    (["run.executor=ray", "train.deterministic=false"], 16, (16, 1)),
])
def test_resolve_parallelism(overrides, cores, want):
    assert resolve_parallelism(cfg_with(*overrides), cores=cores) == want


@pytest.mark.parametrize("address", ["", "local", "auto", "10.0.0.5:6379", "ray://head.example:10001", "[::1]:6379"])
def test_ray_addresses_accepted(address):
    assert check_ray_address(address) == address


@pytest.mark.parametrize("address", ["head", "host:port", "host:0", "host:70000", "a b:1", "http://x:1"])
def test_ray_addresses_refused(address):
    with pytest.raises(UserError, match="--ray-address"):
        check_ray_address(address)


def test_job_config_carries_only_the_sections_the_run_uses():
    cfg = cfg_with("run.pretext=rotation", "run.supervised=false")
    d = job_config(cfg, threads=3)
    assert sorted(d) == ["data", "eval", "model", "proxy", "run", "train"]  # no moco / jigsaw / ... sections
    assert d["train"]["threads"] == 3
    cfg = cfg_with("run.pretext=moco", "moco.queue_size=640")
    assert job_config(cfg)["moco"]["queue_size"] == 640
    # a proxy run: its proxies' options and the options of the objective whose loss they use
    cfg = cfg_with("run.pretext=none", "run.proxies=swap,grad_norm", "swap.batch_size=8", "proxy.loss=jigsaw",
                   "jigsaw.grid=3", "run.supervised=false")
    d = job_config(cfg)
    assert sorted(d) == ["data", "eval", "grad_norm", "jigsaw", "model", "proxy", "run", "swap", "train"]
    assert d["swap"]["batch_size"] == 8 and d["proxy"]["loss"] == "jigsaw" and d["jigsaw"]["grid"] == 3


def test_exit_reasons():
    assert _exit_reason(-signal.SIGKILL) == "worker process killed by SIGKILL (often the out-of-memory killer)"
    assert _exit_reason(-signal.SIGSEGV) == "worker process killed by SIGSEGV"
    assert _exit_reason(3) == "worker process exited with status 3"


def test_local_executor_skips_jobs_the_claim_refuses(tmp_path):
    cfg = cfg_with("run.supervised=false", "train.steps=1", "train.precise_bn=0")
    specs = [ArchSpec("resnet", {"depths": [1, 1, 1], "width": 8}, i) for i in range(3)]
    jobs = plan_jobs(cfg, specs)
    ctx = JobContext(job_config(cfg, 1), str(tmp_path), "cpu", 1)
    steps = []
    hooks = Hooks(claim=lambda j: j.spec.seed != 1, on_step=lambda j, s, t, i: steps.append((j.spec.seed, s, t)))
    rows = list(LocalExecutor(1).run(jobs, ctx, hooks))
    assert [r.job_id for r in rows] == [jobs[0].job_id, jobs[2].job_id]
    assert all(r.status == "done" for r in rows)
    assert steps == [(0, 1, 1), (2, 1, 1)]



@pytest.mark.slow
def test_ray_gives_the_same_results_as_local_and_pool(tmp_path):
    pytest.importorskip("ray")
    from unnas.rank import main

    args = ["--runs-dir", str(tmp_path), "--num-archs", "3", "--params", "width=8", "--quiet", *TINY]
    for ex in ("local", "pool", "ray"):
        assert main(["--name", ex, "--executor", ex, "--workers", "2", *args]) == 0
    local = stored_results(tmp_path / "local" / "store.sqlite")
    assert len(local) == 6 and all(s == "done" for s, _ in local.values())
    assert stored_results(tmp_path / "pool" / "store.sqlite") == local
    assert stored_results(tmp_path / "ray" / "store.sqlite") == local


def test_jobs_are_planned_candidate_by_candidate():
    # A run stopped halfway then holds whole candidates: each with its scores and its reference.
    cfg = cfg_with("run.pretext=rotation,jigsaw", "run.seeds=2", "run.proxies=synflow")
    specs = [ArchSpec("resnet", {"depths": [1, 1, 1], "width": 8}, i) for i in range(3)]
    jobs = plan_jobs(cfg, specs)
    per = 2 * 4  # seeds x (rotation, jigsaw, supervised, synflow)
    assert len(jobs) == 3 * per
    assert [j.spec.seed for j in jobs] == [i for i in range(3) for _ in range(per)]
    assert [(j.seed, j.objective) for j in jobs[:per]] == [
        (s, o) for s in range(2) for o in ("rotation", "jigsaw", "supervised", "synflow")]
