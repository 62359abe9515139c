"""Population runs: plan jobs, execute them, store one row per finished job.

A job is ``(ArchSpec, objective, training seed)`` under one run configuration. Its id hashes the
spec, the objective, the seed and every configuration section that affects its result, so a
rerun of the same command finds the finished jobs in the store and skips them. Only the driver
writes the store; executing a job returns a :class:`~unnas.store.JobRow`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch

from unnas import config as config_mod
from unnas.config import Config
from unnas.data import Data, load_dataset
from unnas.engine import JobTimeout, evaluate_objective, resolve_device, train
from unnas.errors import DivergedError, UserError
from unnas.objectives.base import DataInfo, build_objective, objective_class
from unnas.spec import ArchSpec, build
from unnas.store import JobRow

SUPERVISED = "supervised"


@dataclass(frozen=True)
class Job:
    spec: ArchSpec
    objective: str
    seed: int
    key: str  # hash of the result-affecting configuration

    @property
    def job_id(self) -> str:
        text = f"{self.spec.to_json()}|{self.objective}|{self.seed}|{self.key}"
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def config_key(cfg: Config, objective: str) -> str:
    """Hash of what determines a job's result: data, training budget, evaluation, the objective's options."""
    d = config_mod.to_dict(cfg)
    parts = {k: d[k] for k in ("data", "train", "eval")}
    parts.pop("train", None)
    train = dict(d["train"])
    for k in ("threads", "time_limit", "checkpoint"):  # execution details, not results
        train.pop(k, None)
    parts["train"] = train
    parts["objective"] = d.get(objective, {})
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def objectives_of(cfg: Config) -> list[str]:
    names = [p.strip() for p in cfg.run.pretext.split(",") if p.strip()]
    if not names:
        raise UserError("--pretext", cfg.run.pretext, "one or more objective names")
    for n in names:
        objective_class(n)  # unknown names -> UserError listing the registered ones
    if cfg.run.supervised and SUPERVISED not in names:
        names.append(SUPERVISED)
    return names


def plan_jobs(cfg: Config, specs: list[ArchSpec]) -> list[Job]:
    jobs = []
    for obj in objectives_of(cfg):
        key = config_key(cfg, obj)
        for spec in specs:
            for seed in range(cfg.run.seeds):
                jobs.append(Job(spec, obj, seed, key))
    return jobs


# ------------------------------------------------------------------ one job
@dataclass
class JobContext:
    """Everything a worker needs to run a job (picklable)."""

    config: dict
    run_dir: str
    device: str = "auto"


_DATA_CACHE: dict[str, Data] = {}


def dataset_for(cfg: Config) -> Data:
    key = json.dumps(config_mod.to_dict(cfg)["data"], sort_keys=True)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_dataset(cfg.data)
    return _DATA_CACHE[key]


def _metrics(objective, data: Data, cfg: Config, device: torch.device) -> dict:
    from eval.features import extract_features
    from eval.knn import knn_accuracy

    ev = cfg.eval
    out = {}
    own = evaluate_objective(objective, data.test, ev.batch_size, seed=0, device=device)
    out["objective_acc"] = own["acc"]
    out["objective_loss"] = own["loss"]
    ftr = extract_features(objective, data.train.images, ev.batch_size, device)
    fte = extract_features(objective, data.test.images, ev.batch_size, device)
    if not torch.isfinite(ftr).all() or not torch.isfinite(fte).all():
        raise DivergedError(-1, float("nan"))
    out["knn_acc"] = knn_accuracy(ftr, data.train.labels, fte, data.test.labels, ev.knn_k, ev.knn_t,
                                  data.num_classes)
    out["score"] = out["knn_acc"] if ev.score == "knn" else out["objective_acc"]
    return out


def run_job(job: Job, ctx: JobContext, on_step: Callable[[int, int, dict], None] | None = None) -> JobRow:
    """Train and evaluate one job; never raises for a candidate's own failure (it is a row)."""
    cfg = config_mod.from_dict(ctx.config)
    run_dir = Path(ctx.run_dir)
    row = JobRow(job.job_id, job.spec.arch_id, job.spec.to_json(), job.spec.generator, job.objective, job.seed,
                 status="failed", started_at=time.time())
    t0 = time.perf_counter()
    ckpt = run_dir / "checkpoints" / job.job_id
    try:
        device = resolve_device(ctx.device)
        data = dataset_for(cfg)
        info = DataInfo.of(data)
        cls = objective_class(job.objective)
        torch.manual_seed(job.seed)
        backbone = build(job.spec, cls.input_channels(data.channels))
        from unnas.generators.complexity import count_flops, count_params

        cx = {"params": count_params(backbone),
              "flops": count_flops(backbone, (1, cls.input_channels(data.channels), *data.image_size))}
        objective = build_objective(job.objective, backbone, info, cfg.objectives.get(job.objective))
        result = train(objective, data.train, cfg.train, seed=job.seed, device=device, checkpoint_dir=ckpt,
                       progress=on_step, config=ctx.config)
        metrics = {**cx, **_metrics(objective, data, cfg, device), "steps": result.steps,
                   "train_loss": result.history[-1]["loss"] if result.history else float("nan"),
                   "train_acc": result.history[-1]["acc"] if result.history else float("nan"),
                   "resumed_from_epoch": result.resumed_from_epoch}
        models = run_dir / "models"
        models.mkdir(parents=True, exist_ok=True)
        from unnas.engine import save_atomic

        save_atomic({"backbone": objective.backbone.state_dict(), "spec": job.spec.to_json(),
                     "objective": job.objective, "seed": job.seed, "config": ctx.config},
                    models / f"{job.job_id}.pt")
        row.status, row.metrics = "done", metrics
        shutil.rmtree(ckpt, ignore_errors=True)
    except DivergedError as e:
        row.status, row.error, row.metrics = "diverged", str(e), {"diverged_step": e.step}
        shutil.rmtree(ckpt, ignore_errors=True)
    except JobTimeout as e:
        row.status, row.error = "timeout", str(e)
    except UserError as e:
        row.status, row.error = "failed", str(e)
    except torch.OutOfMemoryError as e:
        row.status, row.error = "failed", f"out of memory: {str(e).splitlines()[0]}"
    except Exception as e:  # noqa: BLE001 - a candidate's failure must not stop the run
        tb = traceback.extract_tb(e.__traceback__)
        where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        row.status, row.error = "failed", f"{type(e).__name__}: {e}{where}"
    row.seconds = time.perf_counter() - t0
    row.finished_at = time.time()
    return row


def execute_local(jobs: Iterable[Job], ctx: JobContext,
                  on_start: Callable[[Job], None] | None = None,
                  on_step: Callable[[int, int, dict], None] | None = None) -> Iterator[JobRow]:
    """Run jobs one after another in this process."""
    for job in jobs:
        if on_start:
            on_start(job)
        yield run_job(job, ctx, on_step)
