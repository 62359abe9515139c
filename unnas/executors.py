"""Executors and the run's layout: where and how many jobs run at once.

Executors (all yield rows as jobs finish):

* ``local``: one job after another in this process.
* ``pool``: ``workers`` spawned processes on this machine; the driver hands each idle worker one
  job at a time, so a worker that dies (killed, out of memory) fails only its own job and is
  replaced. The dataset is loaded once by the driver and reaches the workers through shared
  memory. Workers die with the driver.
* ``ray``: one Ray task per job with ``threads`` CPUs (and one GPU on CUDA); a local Ray instance
  when no cluster address is given. Checkpoints and models are written under the run folder, so
  on a multi-node cluster it must be on storage every node sees.

Layout: :func:`run_layout` picks ``(executor, workers, threads)`` from the configuration, the
core count and the number of jobs (``run.executor=auto`` spreads the cores over the jobs). Jobs
run through :func:`unnas.runner.run_job` (looked up at call time).
"""

from __future__ import annotations

import collections
import ctypes
import importlib.machinery
import os
import signal
import time
from dataclasses import dataclass
from multiprocessing import connection as mp_connection
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.multiprocessing  # noqa: F401 - registers shared-memory pickling of tensors

from unnas import runner
from unnas.config import Config
from unnas.data import Data
from unnas.errors import UserError
from unnas.objectives.base import objective_class
from unnas.runner import EXECUTORS, Job, JobContext, new_row, objectives_of, prime_dataset, set_threads
from unnas.store import JobRow


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
    return tuple(sorted(m for m in mods if m and m.split(".")[0] != "unnas"))


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
            yield runner.run_job(job, ctx, lambda s, t, i, j=job: hooks.step(j, s, t, i), lambda m, j=job: hooks.log(j, m))


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
    set_threads(threads)
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
            prime_dataset(msg[1], msg[2])
        elif msg[0] == "job":
            row = runner.run_job(msg[1], msg[2], step, lambda m: conn.send(("log", m)))
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
    """``workers`` processes on this machine, ``threads`` intra-op threads each. Idle workers outlive
    a :meth:`run` that finished, so the rounds of a search or of successive halving do not start
    their workers again; :meth:`close` stops them (they also die with this process)."""

    name = "pool"

    def __init__(self, workers: int, threads: int = 1, data: Data | None = None, key: str | None = None):
        if workers < 1:
            raise UserError("--workers", workers, "an integer >= 1")
        self.workers, self.threads = workers, threads
        self.data_msg = ("data", key, data) if data is not None and key is not None else None
        self.idle: list[_Worker] = []  # started workers kept between runs

    def run(self, jobs: Iterable[Job], ctx: JobContext, hooks: Hooks | None = None) -> Iterator[JobRow]:
        hooks = hooks or Hooks()
        mp = torch.multiprocessing.get_context("spawn")
        it, back = iter(jobs), collections.deque()
        workers = [w for w in self.idle if w.proc.is_alive()]
        self.idle = []
        exhausted = finished = False
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
            finished = True
        finally:
            if finished:
                self.idle = workers
            else:  # interrupted (or the caller stopped reading): no worker outlives the run
                for w in workers:
                    w.stop(kill=w.job is not None)

    def close(self) -> None:
        for w in self.idle:
            w.stop()
        self.idle = []

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


def check_executor_installed(name: str) -> None:
    """Refuse ``--executor ray`` where Ray is not installed (before any run folder is written)."""
    import importlib.util

    if name == "ray" and importlib.util.find_spec("ray") is None:
        raise UserError("--executor", "ray", "local, pool, auto", message="Ray is not installed "
                        "(pip install 'unnas[ray]')")


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
    if data_pack is not None and not runner.primed(data_pack[0]):
        prime_dataset(*data_pack)
    return runner.run_job(job, ctx)


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
        check_executor_installed("ray")
        import ray

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
