"""Population runs: plan jobs, execute them, store one row per finished job.

A job is ``(ArchSpec, objective, training seed)`` under one run configuration. Its id hashes the
spec, the objective, the seed and every configuration section that affects its result, so a
rerun of the same command finds the finished jobs in the store and skips them. Only the driver
writes the store; executing a job returns a :class:`~unnas.store.JobRow`, and a candidate's own
failure (NaN loss, exception, time limit, out of memory, a dead worker) is a row, never an
exception that stops the run.

The executors that run jobs and the run's layout (workers x threads) are in
:mod:`unnas.executors`.

Determinism: a job's result depends on its seed, its configuration and, on CPU, on the number of
intra-op threads it uses (reductions are split differently). Every executor therefore runs each
job with the same ``threads``, so the same command gives bit-identical results on every executor.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import json
import shutil
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.multiprocessing  # noqa: F401 - registers shared-memory pickling of tensors

from unnas import config as config_mod
from unnas.config import Config
from unnas.data import Data, load_dataset
from unnas.engine import JobTimeout, resolve_device, save_atomic, train
from unnas.errors import DivergedError, UserError
from unnas.jobs import check_names_unique, job_kind, proxy_metrics, training_metrics
from unnas.objectives.base import DataInfo, build_objective, objective_class
from unnas.precision import resolve_precision
from unnas.spec import ArchSpec, build
from unnas.store import JobRow, Store

SUPERVISED = "supervised"
# Train options that change how a job runs, not its result (a resumed run may change them).
# ``threads`` is one on CPU in principle; every executor uses the same value for a run.
EXECUTION_TRAIN_FIELDS = ("threads", "time_limit", "checkpoint")


@dataclass(frozen=True)
class Job:
    spec: ArchSpec
    objective: str  # an objective (a training job) or a proxy (a zero-cost job): unnas.jobs.job_kind
    seed: int
    key: str  # hash of the result-affecting configuration
    stop: int = 0  # train only up to this epoch of the schedule (a successive-halving rung); 0 = all of it

    @property
    def lineage_id(self) -> str:
        """The job without its stopping epoch: the rungs of one candidate share it (and its checkpoints)."""
        text = f"{self.spec.to_json()}|{self.objective}|{self.seed}|{self.key}"
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    @property
    def job_id(self) -> str:
        if not self.stop:
            return self.lineage_id
        text = f"{self.spec.to_json()}|{self.objective}|{self.seed}|{self.key}|stop={self.stop}"
        return hashlib.sha1(text.encode()).hexdigest()[:16]


def config_key(cfg: Config, objective: str) -> str:
    """Hash of what determines a job's result. Training jobs: data, training budget, evaluation
    settings (not the choice of the ranking column), the objective's options. Proxy jobs: data, the
    proxy settings, the proxy's options (and those of the objective whose loss it uses)."""
    d = config_mod.to_dict(cfg)
    if job_kind(objective) == "proxy":
        parts = {"data": d["data"], "proxy": d["proxy"], "objective": d.get(objective, {}),
                 "loss": d.get(cfg.proxy.loss, {})}
    else:
        train = {k: v for k, v in d["train"].items() if k not in EXECUTION_TRAIN_FIELDS and k != "amp"}
        train["precision"] = resolve_precision(cfg.train, resolve_device(cfg.run.device))  # what "auto" means here
        ev = {k: v for k, v in d["eval"].items() if k != "score"}
        parts = {"data": d["data"], "train": train, "eval": ev, "objective": d.get(objective, {})}
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def wants_supervised(cfg: Config) -> bool:
    """``run.supervised``; unset: train the supervised reference unless a reference table is given."""
    return bool(cfg.run.supervised) if cfg.run.supervised is not None else not cfg.reference.path


def _names(text: str) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def pretexts_of(cfg: Config) -> list[str]:
    """The label-free objectives of ``run.pretext`` (``none``: no training, proxies only)."""
    names = _names(cfg.run.pretext)
    if names == ["none"]:
        return []
    if not names:
        raise UserError("--pretext", cfg.run.pretext, "one or more objective names, or none")
    for n in names:
        try:
            cls = objective_class(n)
        except UserError as e:  # unknown names: the registry's list, under the option's name
            raise UserError("--pretext", n, e.allowed, message=f"unknown objective {n!r}") from None
        if n != SUPERVISED and cls.uses_labels:
            raise UserError("--pretext", n, "label-free objectives", message=f"objective {n} reads labels")
    return names


BASELINE_PROXIES = ("params", "flops")  # every job records them: they are columns without jobs of their own


def proxies_of(cfg: Config) -> list[str]:
    """The proxies of ``run.proxies`` that run as jobs (``params`` and ``flops`` are always there)."""
    from unnas.registry import PROXIES

    check_names_unique()
    names = _names(cfg.run.proxies)
    for n in names:
        PROXIES.get(n)  # unknown names -> UserError listing the registered proxies
    return [n for n in names if n not in BASELINE_PROXIES]


def training_objectives(cfg: Config) -> list[str]:
    """The training objectives a configuration names: the label-free ones, then ``supervised`` when
    wanted (possibly none: a search scored by its reference table trains nothing)."""
    names = pretexts_of(cfg)
    if wants_supervised(cfg) and SUPERVISED not in names:
        names.append(SUPERVISED)
    return names


def objectives_of(cfg: Config) -> list[str]:
    """Every training objective of a run (:func:`training_objectives`); a run with neither an
    objective nor a proxy is refused."""
    names = training_objectives(cfg)
    if not names and not proxies_of(cfg):
        raise UserError("--pretext", cfg.run.pretext, "an objective, or --proxies with --pretext none",
                        message="nothing to run")
    return names


def plan_jobs(cfg: Config, specs: list[ArchSpec], objectives: list[str] | None = None, stop: int = 0,
              proxies: bool = True) -> list[Job]:
    """Jobs for every spec x seed: one per training objective (``objectives``, default all of the
    run's), trained up to epoch ``stop`` (0 = the whole schedule), and one per proxy.

    Candidate by candidate (every objective and seed of the first spec, then the next), so that a
    run stopped halfway holds whole candidates, each with its label-free scores and its reference.
    """
    names = list(objectives_of(cfg) if objectives is None else objectives)
    if proxies:
        names += proxies_of(cfg)
    keys = {obj: config_key(cfg, obj) for obj in names}
    return [Job(spec, obj, seed, keys[obj], stop if job_kind(obj) == "train" else 0)
            for spec in specs for seed in range(cfg.run.seeds) for obj in names]


EXECUTORS = ("auto", "local", "pool", "ray")
# Metrics that describe how a job ran rather than what it found (they may differ between an
# interrupted-and-resumed job and an uninterrupted one).
EXECUTION_METRICS = ("resumed_from_epoch", "cpu_seconds", "proxy_seconds")
RETRY_STATUSES = ("failed", "diverged", "timeout")


def stored_results(store_path: str | Path) -> dict[str, tuple[str, dict]]:
    """``job_id -> (status, metrics without EXECUTION_METRICS)`` of a store: what must agree
    between executors, and between an interrupted-and-resumed run and an uninterrupted one."""
    with Store(store_path) as store:
        return {r.job_id: (r.status, {k: v for k, v in r.metrics.items() if k not in EXECUTION_METRICS})
                for r in store.rows()}


# ------------------------------------------------------------------ one job
def job_config(cfg: Config, threads: int | None = None) -> dict:
    """The configuration sent to workers: the core sections plus the options of the objectives
    this run uses, its proxies' and the proxy loss's (a worker need not have every plugin the driver
    imported). ``threads``, when given, replaces ``train.threads`` so the engine applies the run's
    per-job thread count."""
    proxies = proxies_of(cfg)
    used = set(objectives_of(cfg)) | set(proxies) | ({cfg.proxy.loss} if proxies else set())
    d = {k: v for k, v in config_mod.to_dict(cfg).items()
         if k in ("data", "model", "train", "eval", "run", "proxy") or k in used}
    if threads is not None:
        d["train"] = {**d["train"], "threads": threads}
    return d


@dataclass
class JobContext:
    """Everything a worker needs to run a job (picklable)."""

    config: dict
    run_dir: str
    device: str = "auto"
    threads: int = 0  # intra-op threads for every job (0 = leave torch's default)
    plugins: tuple[str, ...] = ()  # modules imported first (they register generators / objectives)


def import_plugins(names: Iterable[str]) -> None:
    """Import user modules that register components (workers import them too)."""
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise UserError("--plugins", name, "importable module names",
                            message=f"cannot import {name!r} ({e})") from None


_DATA_CACHE: dict[str, Data] = {}


def data_key(cfg: Config) -> str:
    return json.dumps(config_mod.to_dict(cfg)["data"], sort_keys=True)


def dataset_for(cfg: Config) -> Data:
    """The dataset of ``cfg``, loaded once per process."""
    key = data_key(cfg)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_dataset(cfg.data)
    return _DATA_CACHE[key]


def primed(key: str) -> bool:
    """Whether this process holds the dataset of ``key`` already."""
    return key in _DATA_CACHE


def prime_dataset(key: str, data: Data) -> None:
    _DATA_CACHE.clear()
    _DATA_CACHE[key] = data


def checkpoint_dir(run_dir: str | Path, job_id: str) -> Path:
    return Path(run_dir) / "checkpoints" / job_id


def job_checkpoints(run_dir: str | Path, job: Job) -> Path:
    """A job's checkpoint folder: per lineage, so each rung of a candidate continues from the last."""
    return checkpoint_dir(run_dir, job.lineage_id)


def discard_checkpoints(run_dir: str | Path, row: JobRow, lineage: str | None = None, keep: bool = False) -> None:
    """After ``row`` is committed: a finished or diverged job no longer needs its checkpoints
    (a timed-out or failed one keeps them, so ``--retry-failed`` resumes it; ``keep``: a rung whose
    candidate may continue keeps them). ``lineage`` names the folder (default: the job id)."""
    if row.status in ("done", "diverged") and not keep:
        shutil.rmtree(checkpoint_dir(run_dir, lineage or row.job_id), ignore_errors=True)


def set_threads(threads: int) -> None:
    if threads and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    if threads:
        try:
            import faiss

            faiss.omp_set_num_threads(threads)
        except ImportError:  # pragma: no cover - faiss is a dependency
            pass


def new_row(job: Job, status: str = "failed", error: str | None = None) -> JobRow:
    return JobRow(job.job_id, job.spec.arch_id, job.spec.to_json(), job.spec.generator, job.objective, job.seed,
                  status=status, error=error, started_at=time.time(), host=socket.gethostname())


def _train_job(job: Job, ctx: JobContext, cfg: Config, data: Data, device: torch.device, on_step, log) -> dict:
    """Build, train (resuming from the lineage's newest checkpoint) and evaluate; save the model."""
    from unnas.generators.complexity import count_flops, count_params

    info = DataInfo.of(data)
    cls = objective_class(job.objective)
    torch.manual_seed(job.seed)
    in_ch = cls.input_channels(data.channels)
    backbone = build(job.spec, in_ch)
    cx = {"params": count_params(backbone), "flops": count_flops(backbone, (1, *info.input_shape(in_ch)))}
    objective = build_objective(job.objective, backbone, info, cfg.objectives.get(job.objective))
    result = train(objective, data.train, cfg.train, seed=job.seed, device=device,
                   checkpoint_dir=job_checkpoints(ctx.run_dir, job), progress=on_step, config=ctx.config, log=log,
                   stop_epoch=job.stop)
    if result.resumed_from_epoch:
        log(f"resumed from the checkpoint of epoch {result.resumed_from_epoch}")
    metrics = {**cx, **training_metrics(objective, data, cfg, device, result.step_losses), "steps": result.steps,
               "epochs": result.history[-1]["epoch"] if result.history else 0,
               "train_loss": result.history[-1]["loss"] if result.history else float("nan"),
               "train_acc": result.history[-1]["acc"] if result.history else float("nan"),
               "resumed_from_epoch": result.resumed_from_epoch}
    save_atomic({"backbone": objective.backbone.state_dict(), "spec": job.spec.to_json(),
                 "objective": job.objective, "seed": job.seed, "config": ctx.config},
                Path(ctx.run_dir) / "models" / f"{job.job_id}.pt")
    return metrics


def run_job(job: Job, ctx: JobContext, on_step: Callable[[int, int, dict], None] | None = None,
            on_log: Callable[[str], None] | None = None) -> JobRow:
    """Run one job (train and evaluate, or compute a proxy); never raises for a candidate's own
    failure (it is a row).

    A training job resumes from its lineage's newest readable epoch checkpoint; notes (resume, refused checkpoints)
    go to ``<run_dir>/logs/<job_id>.log`` and to ``on_log``. Checkpoints are left in place: the
    driver discards them once the row is committed, so a crash in between loses nothing.
    """
    run_dir = Path(ctx.run_dir)
    row = new_row(job)
    t0, c0 = time.perf_counter(), time.process_time()

    def log(msg: str) -> None:
        try:
            (run_dir / "logs").mkdir(parents=True, exist_ok=True)
            with open(run_dir / "logs" / f"{job.job_id}.log", "a") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}\n")
        except OSError:
            pass
        if on_log is not None:
            on_log(msg)

    try:
        import_plugins(ctx.plugins)  # before the config: plugin objectives add config sections
        cfg = config_mod.from_dict(ctx.config)
        set_threads(ctx.threads)
        device = resolve_device(ctx.device)
        data = dataset_for(cfg)
        if job_kind(job.objective) == "proxy":
            metrics = proxy_metrics(job.objective, job.spec, data, cfg, job.seed, device)
        else:
            metrics = _train_job(job, ctx, cfg, data, device, on_step, log)
        row.status, row.metrics = "done", {**metrics, "cpu_seconds": time.process_time() - c0}
    except DivergedError as e:
        row.status, row.error, row.metrics = "diverged", str(e), {"diverged_step": e.step}
    except JobTimeout as e:
        row.status, row.error = "timeout", str(e)
    except UserError as e:
        row.status, row.error = "failed", str(e)
    except torch.OutOfMemoryError as e:
        row.status, row.error = "failed", f"out of memory: {str(e).splitlines()[0]}"
    except MemoryError:
        row.status, row.error = "failed", "out of memory (host RAM)"
    except Exception as e:  # noqa: BLE001 - a candidate's failure must not stop the run
        tb = traceback.extract_tb(e.__traceback__)
        where = f" ({Path(tb[-1].filename).name}:{tb[-1].lineno})" if tb else ""
        row.status, row.error = "failed", f"{type(e).__name__}: {e}{where}"
    if row.status != "done":
        log(f"{row.status}: {row.error}")
    row.seconds = time.perf_counter() - t0
    row.finished_at = time.time()
    return row
