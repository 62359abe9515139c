"""One locked run folder with its store, tracker, executor and progress display: what a ranking run
and a search run share. :meth:`Session.execute` runs jobs, committing one row per finished job (and
only then discarding its checkpoints); :meth:`Session.rounds` builds the job loop's ``evaluate``.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.progress import Progress

from unnas import config as config_mod
from unnas.config import Config
from unnas.executors import Hooks, available_cores, make_executor, run_layout
from unnas.lock import Claims
from unnas.progress import LogProgress, bar_columns
from unnas.runner import RETRY_STATUSES, JobContext, data_key, discard_checkpoints, job_config, objectives_of, proxies_of
from unnas.store import Store
from unnas.tracking import Tracker


def job_precisions(cfg: Config) -> str:
    """What a run's jobs compute in, for its header: the resolved ``train.precision`` of the training
    jobs; proxies never run under autocast (float32; synflow float64)."""
    if not proxies_of(cfg):
        return cfg.train.precision
    return f"{cfg.train.precision}, proxies full precision" if objectives_of(cfg) else "proxies full precision"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextmanager
def _logging(log: LogProgress | None):
    """The heartbeat thread of ``log`` while jobs run (nothing without one)."""
    if log is None:
        yield
        return
    log.start()
    try:
        yield
    finally:
        log.close()


@dataclass
class Session:
    cfg: Config
    run_dir: Path
    data: object
    console: Console
    quiet: bool = False
    retry_failed: bool = False
    join: bool = False
    ray_address: str = ""
    plugins: tuple[str, ...] = ()
    jobs: int | None = None  # how many jobs the run expects (None: many): the auto layout's hint
    t0: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        cfg = self.cfg
        write_atomic(self.run_dir / "config.yaml", config_mod.to_yaml(cfg))
        self.cfg_dict = config_mod.to_dict(cfg)
        self.store = Store(self.run_dir / "store.sqlite")
        self.executor_name, self.workers, self.threads, self.plugins = run_layout(cfg, self.jobs, self.plugins)
        self.tracker = Tracker(self.run_dir, cfg.run.wandb, cfg.run.wandb_project, self.cfg_dict, self.run_dir.name)
        self.ctx = JobContext(job_config(cfg, self.threads), str(self.run_dir), cfg.run.device, self.threads,
                              self.plugins)
        gpus = 1.0 if cfg.run.device.startswith("cuda") else 0.0
        ex = self.executor_name
        self.executor = make_executor(ex, workers=self.workers, threads=self.threads, ray_address=self.ray_address,
                                      gpus=gpus, data=self.data if ex != "local" else None, key=data_key(cfg))
        self.claims = Claims(self.run_dir) if self.join else None
        self.rerun = set(RETRY_STATUSES) if self.retry_failed else set()

    def start(self, **fields) -> None:
        from unnas.engine import resolve_device
        from unnas.outputs import write_provenance

        self.provenance = write_provenance(self.run_dir, device=str(resolve_device(self.cfg.run.device)))
        self.tracker.log("run_start", data=self.data.summary(), argv=sys.argv, executor=self.executor_name,
                         workers=self.workers, threads=self.threads, precision=self.cfg.train.precision,
                         pid=os.getpid(), join=self.join, retry_failed=self.retry_failed, **fields)

    @property
    def layout(self) -> str:
        ex = self.executor_name
        par = ("" if ex == "local" else f" x {self.workers} workers") + (
            f" (auto, {available_cores()} cores)" if self.cfg.run.executor == "auto" else "")
        return f"\\[executor {ex}{par}, {self.threads or 'default'} thread(s) per job, {job_precisions(self.cfg)}]"

    def stop_workers(self) -> None:
        """Stop the executor's idle workers (from then on their CPU time is this process's children's)."""
        close = getattr(self.executor, "close", None)
        if close is not None:
            close()

    def close(self) -> None:
        self.stop_workers()
        if self.claims is not None:
            self.claims.release_all()
        self.store.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def execute(self, todo: list, keep: Callable = lambda job: False,
                line: Callable = lambda row, job: "") -> None:
        """Run ``todo`` on the executor; commit each row, then discard its checkpoints unless
        ``keep(job)``; print ``line(row, job)`` per finished job."""
        store, claims, console = self.store, self.claims, self.console
        progress = Progress(*bar_columns(), console=console, disable=self.quiet, transient=True)
        log = None if self.quiet or console.is_terminal else LogProgress(len(todo), console.print)
        running: dict[str, int] = {}
        by_id = {j.job_id: j for j in todo}

        def claim(job) -> bool:
            """--join: take the job unless another runner holds it or has stored it meanwhile."""
            if not claims.claim(job.job_id):
                progress.advance(overall)
                return False
            stored = store.conn.execute("SELECT status, finished_at FROM jobs WHERE job_id = ?",
                                        (job.job_id,)).fetchone()
            if stored is not None and not (stored[0] in self.rerun and (stored[1] or 0) < self.t0):
                claims.release(job.job_id)
                progress.advance(overall)
                return False
            return True

        def on_start(job) -> None:
            running[job.job_id] = progress.add_task(f"{job.objective} {job.spec.arch_id} seed {job.seed}", total=1)

        def on_step(job, step, total, info) -> None:
            if job.job_id in running:
                progress.update(running[job.job_id], completed=step, total=total)
            if log is not None:
                log.step(f"{job.objective} {job.spec.arch_id} seed {job.seed}", step, total)

        def on_log(job, msg) -> None:
            progress.console.print(f"  [dim]{job.job_id}[/] {msg}")

        hooks = Hooks(claim=claim if claims is not None else None, on_start=on_start, on_step=on_step, on_log=on_log)
        with progress, _logging(log):
            overall = progress.add_task("jobs", total=len(todo))
            for row in self.executor.run(todo, self.ctx, hooks):
                store.put(row)  # committed: from here on the job is never run again
                job = by_id.get(row.job_id)
                if job is not None:
                    discard_checkpoints(self.run_dir, row, job.lineage_id, keep=keep(job))
                if claims is not None:
                    claims.release(row.job_id)
                self.tracker.log("job", job_id=row.job_id, arch_id=row.arch_id, objective=row.objective,
                                 seed=row.seed, status=row.status, metrics=row.metrics, seconds=row.seconds,
                                 error=row.error)
                if row.job_id in running:
                    progress.remove_task(running.pop(row.job_id))
                progress.advance(overall)
                progress.console.print(line(row, job))
                if log is not None:
                    log.finished(f"{row.objective} {row.arch_id} seed {row.seed}")

    def rounds(self, *, select: str = "", rungs=(), rank=None, on_round=None):
        """The job loop's ``evaluate`` for this session (:class:`unnas.rounds.RoundRunner`; ``rank``
        defaults to :func:`unnas.rounds.rank_rows`, the objectives in the order the command named them)."""
        from unnas.rounds import RoundRunner
        from unnas.summary import job_line

        holder: list = []
        runner = RoundRunner(self.cfg, self.store, lambda todo: self.execute(todo, holder[0].keeps_checkpoints,
                                                                              job_line),
                             rank, select=select, rungs=rungs, retry=self.retry_failed, on_round=on_round)
        holder.append(runner)
        return runner
