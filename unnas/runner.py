"""Population runs: plan jobs, execute them, store one row per finished job.

A job is ``(ArchSpec, objective, training seed)`` under one run configuration. Its id hashes the
spec, the objective, the seed and every configuration section that affects its result, so a
rerun of the same command finds the finished jobs in the store and skips them. Only the driver
writes the store; executing a job returns a :class:`~unnas.store.JobRow`, and a candidate's own
failure (NaN loss, exception, time limit, out of memory, a dead worker) is a row, never an
exception that stops the run.

Executors (all yield rows as jobs finish):

* ``local``: one job after another in this process.
* ``pool``: ``workers`` spawned processes on this machine; the driver hands each idle worker one
  job at a time, so a worker that dies (killed, out of memory) fails only its own job and is
  replaced. The dataset is loaded once by the driver and reaches the workers through shared
  memory. Workers die with the driver.
* ``ray``: one Ray task per job with ``threads`` CPUs (and one GPU on CUDA); a local Ray instance
  when no cluster address is given. Checkpoints and models are written under the run folder, so
  on a multi-node cluster it must be on storage every node sees.

Determinism: a job's result depends on its seed, its configuration and, on CPU, on the number of
intra-op threads it uses (reductions are split differently). Every executor therefore runs each
job with the same ``threads``, so the same command gives bit-identical results on every executor.
"""

from __future__ import annotations

import collections
import ctypes
import hashlib
import importlib
import importlib.machinery
import json
import os
import shutil
import signal
import socket
import time
import traceback
from dataclasses import dataclass
from multiprocessing import connection as mp_connection
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

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
        cls = objective_class(n)  # unknown names -> UserError listing the registered ones
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


def objectives_of(cfg: Config) -> list[str]:
    """Every training objective of a run: the label-free ones, then ``supervised`` when wanted."""
    names = pretexts_of(cfg)
    if wants_supervised(cfg) and SUPERVISED not in names:
        names.append(SUPERVISED)
    if not names and not proxies_of(cfg):
        raise UserError("--pretext", cfg.run.pretext, "an objective, or --proxies with --pretext none",
                        message="nothing to run")
    return names


def plan_jobs(cfg: Config, specs: list[ArchSpec], objectives: list[str] | None = None, stop: int = 0,
              proxies: bool = True) -> list[Job]:
    """Jobs for every spec x seed: one per training objective (``objectives``, default all of the
    run's), trained up to epoch ``stop`` (0 = the whole schedule), and one per proxy."""
    names = list(objectives_of(cfg) if objectives is None else objectives)
    if proxies:
        names += proxies_of(cfg)
    jobs = []
    for obj in names:
        key = config_key(cfg, obj)
        for spec in specs:
            for seed in range(cfg.run.seeds):
                jobs.append(Job(spec, obj, seed, key, stop if job_kind(obj) == "train" else 0))
    return jobs


EXECUTORS = ("auto", "local", "pool", "ray")
# Metrics that describe how a job ran rather than what it found (they may differ between an
# interrupted-and-resumed job and an uninterrupted one).
EXECUTION_METRICS = ("resumed_from_epoch", "cpu_seconds")
RETRY_STATUSES = ("failed", "diverged", "timeout")


def stored_results(store_path: str | Path) -> dict[str, tuple[str, dict]]:
    """``job_id -> (status, metrics without EXECUTION_METRICS)`` of a store: what must agree
    between executors, and between an interrupted-and-resumed run and an uninterrupted one."""
    with Store(store_path) as store:
        return {r.job_id: (r.status, {k: v for k, v in r.metrics.items() if k not in EXECUTION_METRICS})
                for r in store.rows()}


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def resolve_parallelism(cfg: Config, cores: int | None = None, jobs: int | None = None) -> tuple[int, int]:
    """``(workers, threads)`` for ``cfg.run.executor``.

    ``auto`` (the default) uses every core: ``workers x threads`` = the core count, one worker
    per job while there are more jobs than cores (``jobs``; None = many), the spare cores as
    threads of fewer workers otherwise (``run.workers`` / ``run.threads_per_worker`` /
    ``train.threads`` fix either); on CUDA one worker. :func:`resolve_executor` runs a single
    worker in this process. For ``local``/``pool``/``ray``: ``threads`` (intra-op threads of
    every job) = ``run.threads_per_worker``, else ``train.threads``, else 1 in deterministic mode
    (it keeps results identical across executors), else 1 per pool/Ray worker and torch's default
    (0) for ``local``; ``workers`` = ``run.workers``, else ``cores // threads`` (1 for ``local``).
    """
    cores = cores or available_cores()
    run = cfg.run
    fixed = run.threads_per_worker or cfg.train.threads
    if run.executor == "auto":
        if run.device.startswith("cuda"):
            return 1, fixed or 1
        slots = run.workers or max(1, min(jobs if jobs else cores, cores // max(fixed, 1)))
        return slots, fixed or max(1, cores // slots)
    threads = fixed
    if not threads:
        threads = 1 if (cfg.train.deterministic or run.executor != "local") else 0
    if run.executor == "local":
        return 1, threads
    return (run.workers or max(1, cores // max(threads, 1))), threads


def resolve_executor(cfg: Config, workers: int) -> str:
    """The executor of a run: ``run.executor``; ``auto`` is ``pool`` for several workers, else ``local``."""
    if cfg.run.executor == "auto":
        return "pool" if workers > 1 else "local"
    return cfg.run.executor


def worker_modules(cfg: Config) -> tuple[str, ...]:
    """Modules outside unnas's own packages that define this run's objectives or generator (a
    worker process imports them first, as it does ``--plugins``); ``__main__`` among them means
    a component no other process can import."""
    from unnas.registry import GENERATORS

    classes = [objective_class(o) for o in objectives_of(cfg)] + [GENERATORS.get(cfg.model.generator)]
    mods = {getattr(c, "__module__", "") or "" for c in classes}
    return tuple(sorted(m for m in mods if m and m.split(".")[0] not in ("unnas", "pretext", "moco", "eval")))


def run_layout(cfg: Config, jobs: int, plugins: Iterable[str] = (), cores: int | None = None
               ) -> tuple[str, int, int, tuple[str, ...]]:
    """``(executor, workers, threads, plugins)`` of a run with ``jobs`` jobs to run: the modules
    of its own components join ``plugins``; ``auto`` stays in this process when a worker could
    not import one of them (``__main__``, or a package not on ``sys.path``)."""
    extra = worker_modules(cfg)
    found = [m for m in extra if importlib.machinery.PathFinder.find_spec(m.split(".")[0]) is not None]
    here = cfg.run.executor == "auto" and len(found) < len(extra)
    workers, threads = resolve_parallelism(cfg, cores, jobs=1 if here else jobs)
    plugins = tuple(dict.fromkeys([*plugins, *found]))
    return resolve_executor(cfg, workers), workers, threads, plugins


# ------------------------------------------------------------------ one job
def job_config(cfg: Config, threads: int | None = None) -> dict:
    """The configuration sent to workers: the core sections plus the options of the objectives
    this run uses (a worker need not have every plugin the driver imported). ``threads``, when
    given, replaces ``train.threads`` so the engine applies the run's per-job thread count."""
    used = set(objectives_of(cfg))
    d = {k: v for k, v in config_mod.to_dict(cfg).items() if k in ("data", "model", "train", "eval", "run") or k in used}
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


def _prime_dataset(key: str, data: Data) -> None:
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


def _set_threads(threads: int) -> None:
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
    metrics = {**cx, **training_metrics(objective, data, cfg, device), "steps": result.steps,
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
        _set_threads(ctx.threads)
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


# ------------------------------------------------------------------ executors
@dataclass
class Hooks:
    """Driver callbacks. ``claim(job)`` is asked just before a job is dispatched (``False``: skip
    it, another runner has it); the others only report."""

    claim: Callable[[Job], bool] | None = None
    on_start: Callable[[Job], None] | None = None
    on_step: Callable[[Job, int, int, dict], None] | None = None
    on_log: Callable[[Job, str], None] | None = None

    def take(self, jobs: Iterator[Job], pushed_back: collections.deque) -> Job | None:
        if pushed_back:
            return pushed_back.popleft()
        for job in jobs:
            if self.claim is None or self.claim(job):
                return job
        return None

    def start(self, job: Job) -> None:
        if self.on_start:
            self.on_start(job)

    def step(self, job: Job, step: int, total: int, info: dict) -> None:
        if self.on_step:
            self.on_step(job, step, total, info)

    def log(self, job: Job, msg: str) -> None:
        if self.on_log:
            self.on_log(job, msg)


class LocalExecutor:
    """One job after another in this process."""

    name = "local"

    def __init__(self, threads: int = 0):
        self.threads = threads

    def run(self, jobs: Iterable[Job], ctx: JobContext, hooks: Hooks | None = None) -> Iterator[JobRow]:
        hooks = hooks or Hooks()
        it, back = iter(jobs), collections.deque()
        while (job := hooks.take(it, back)) is not None:
            hooks.start(job)
            yield run_job(job, ctx, lambda s, t, i, j=job: hooks.step(j, s, t, i), lambda m, j=job: hooks.log(j, m))


def execute_local(jobs: Iterable[Job], ctx: JobContext,
                  on_start: Callable[[Job], None] | None = None,
                  on_step: Callable[[int, int, dict], None] | None = None) -> Iterator[JobRow]:
    """Run jobs one after another in this process (kept for callers of the first API)."""
    hooks = Hooks(on_start=on_start, on_step=(lambda j, s, t, i: on_step(s, t, i)) if on_step else None)
    yield from LocalExecutor(ctx.threads).run(jobs, ctx, hooks)


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (a killed driver leaves no worker behind)."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _pool_worker(conn, threads: int) -> None:
    """Worker loop: ``("data", key, Data)`` primes the dataset cache, ``("job", job, ctx)`` runs
    one job (sending ``step``/``log`` messages, then ``("row", row)``), ``("stop",)`` ends."""
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's business
    _set_threads(threads)
    last = [0.0]

    def step(s: int, t: int, info: dict) -> None:
        now = time.monotonic()
        if s >= t or now - last[0] > 0.25:
            last[0] = now
            conn.send(("step", s, t, info))

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        if msg[0] == "data":
            _prime_dataset(msg[1], msg[2])
        elif msg[0] == "job":
            row = run_job(msg[1], msg[2], step, lambda m: conn.send(("log", m)))
            conn.send(("row", row))


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "worker process stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (often the out-of-memory killer)" if -code == signal.SIGKILL else ""
        return f"worker process killed by {name}{hint}"
    return f"worker process exited with status {code}"


class _Worker:
    def __init__(self, mp, threads: int, data_msg: tuple | None):
        parent, child = mp.Pipe()
        self.proc = mp.Process(target=_pool_worker, args=(child, threads), daemon=True, name="unnas-worker")
        self.proc.start()
        child.close()
        self.conn = parent
        self.job: Job | None = None
        if data_msg is not None:
            self.conn.send(data_msg)

    def stop(self, kill: bool = False) -> None:
        if not kill:
            try:
                self.conn.send(("stop",))
            except OSError:
                kill = True
        if kill and self.proc.is_alive():
            self.proc.kill()
        self.proc.join(timeout=10)
        if self.proc.is_alive():  # pragma: no cover - a worker stuck in native code
            self.proc.kill()
            self.proc.join(timeout=5)
        self.conn.close()


class PoolExecutor:
    """``workers`` processes on this machine, ``threads`` intra-op threads each."""

    name = "pool"

    def __init__(self, workers: int, threads: int = 1, data: Data | None = None, key: str | None = None):
        if workers < 1:
            raise UserError("--workers", workers, "an integer >= 1")
        self.workers, self.threads = workers, threads
        self.data_msg = ("data", key, data) if data is not None and key is not None else None

    def run(self, jobs: Iterable[Job], ctx: JobContext, hooks: Hooks | None = None) -> Iterator[JobRow]:
        hooks = hooks or Hooks()
        mp = torch.multiprocessing.get_context("spawn")
        it, back = iter(jobs), collections.deque()
        workers: list[_Worker] = []
        exhausted = False
        try:
            while True:
                while not exhausted:
                    idle = next((w for w in workers if w.job is None), None)
                    if idle is None and len(workers) < self.workers:
                        idle = _Worker(mp, self.threads, self.data_msg)
                        workers.append(idle)
                    if idle is None:
                        break
                    job = hooks.take(it, back)
                    if job is None:
                        exhausted = True
                        break
                    try:
                        idle.conn.send(("job", job, ctx))
                    except OSError:  # the idle worker died: replace it, keep the job
                        back.appendleft(job)
                        workers.remove(idle)
                        idle.stop(kill=True)
                        continue
                    idle.job = job
                    hooks.start(job)
                busy = [w for w in workers if w.job is not None]
                if not busy:
                    break
                mp_connection.wait([w.conn for w in busy] + [w.proc.sentinel for w in busy])
                for w in busy:
                    row = self._receive(w, hooks)
                    if row is not None:
                        yield row
                    if not w.proc.is_alive() and w.job is None:
                        workers.remove(w)
        finally:
            for w in workers:
                w.stop(kill=w.job is not None)

    @staticmethod
    def _receive(w: _Worker, hooks: Hooks) -> JobRow | None:
        job = w.job
        assert job is not None
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                if msg[0] == "step":
                    hooks.step(job, *msg[1:])
                elif msg[0] == "log":
                    hooks.log(job, msg[1])
                elif msg[0] == "row":
                    w.job = None
                    return msg[1]
        except (EOFError, OSError):
            pass
        if w.proc.is_alive():
            return None
        w.proc.join(timeout=5)
        w.job = None
        row = new_row(job, "failed", _exit_reason(w.proc.exitcode))
        row.finished_at = time.time()
        return row


def check_ray_address(address: str) -> str:
    """``""``/``local`` (start a local Ray instance), ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``."""
    a = (address or "").strip()
    if a in ("", "local", "auto"):
        return a
    rest = a[len("ray://"):] if a.startswith("ray://") else a
    host, _, port = rest.rpartition(":")
    if host and port.isdigit() and 0 < int(port) < 65536 and all(c.isalnum() or c in ".-_[]:" for c in host):
        return a
    raise UserError("--ray-address", address, "local, auto, HOST:PORT, ray://HOST:PORT")


def _ray_job(job: Job, ctx: JobContext, data_pack: tuple | None) -> JobRow:
    if data_pack is not None and data_pack[0] not in _DATA_CACHE:
        _prime_dataset(*data_pack)
    return run_job(job, ctx)


class RayExecutor:
    """One Ray task per job with ``threads`` CPUs and ``gpus`` GPUs. At most ``window`` tasks are
    in flight (default: twice the cluster's job slots), so huge populations do not flood the
    object store and ``--join`` claims stay lazy. Ray retries a task whose node died."""

    name = "ray"

    def __init__(self, address: str = "", threads: int = 1, gpus: float = 0.0, workers: int = 0,
                 data: Data | None = None, key: str | None = None, window: int = 0):
        self.address = check_ray_address(address)
        self.threads, self.gpus, self.workers, self.window = max(1, threads), gpus, workers, window
        self.data_pack = (key, data) if data is not None and key is not None else None

    def _init(self):
        try:
            import ray
        except ImportError:
            raise UserError("--executor", "ray", "local, pool", message="Ray is not installed "
                            "(pip install 'unnas[ray]')") from None
        started = False
        if not ray.is_initialized():
            kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
            if self.address in ("", "local"):
                kw["num_cpus"] = max(self.workers, 1) * self.threads if self.workers else None
                if self.gpus == 0:
                    kw["num_gpus"] = 0
                ray.init(**kw)
            else:
                try:
                    ray.init(address=self.address, **kw)
                except (ConnectionError, RuntimeError) as e:
                    raise UserError("--ray-address", self.address, "the address of a running Ray cluster",
                                    message=f"cannot connect ({str(e).splitlines()[0][:160]})") from None
            started = True
        return ray, started

    def run(self, jobs: Iterable[Job], ctx: JobContext, hooks: Hooks | None = None) -> Iterator[JobRow]:
        hooks = hooks or Hooks()
        ray, started = self._init()
        remote = ray.remote(_ray_job).options(num_cpus=self.threads, num_gpus=self.gpus, max_retries=3)
        cpus = float(ray.cluster_resources().get("CPU", 1))
        window = self.window or max(2, 2 * int(cpus // self.threads))
        data_ref = ray.put(self.data_pack) if self.data_pack is not None else None
        it, back = iter(jobs), collections.deque()
        inflight: dict[Any, Job] = {}
        try:
            while True:
                while len(inflight) < window and (job := hooks.take(it, back)) is not None:
                    inflight[remote.remote(job, ctx, data_ref)] = job
                    hooks.start(job)
                if not inflight:
                    break
                ready, _ = ray.wait(list(inflight), num_returns=1)
                for ref in ready:
                    job = inflight.pop(ref)
                    try:
                        row = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - worker or node lost beyond Ray's retries
                        row = new_row(job, "failed", f"Ray task failed: {type(e).__name__}: "
                                                     f"{str(e).splitlines()[0][:300] if str(e) else ''}")
                        row.finished_at = time.time()
                    yield row
        finally:
            for ref in inflight:
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


def make_executor(name: str, *, workers: int = 1, threads: int = 0, ray_address: str = "", gpus: float = 0.0,
                  data: Data | None = None, key: str | None = None):
    if name == "local":
        return LocalExecutor(threads)
    if name == "pool":
        return PoolExecutor(workers, threads, data, key)
    if name == "ray":
        return RayExecutor(ray_address, threads, gpus, workers, data, key)
    raise UserError("--executor", name, EXECUTORS)
