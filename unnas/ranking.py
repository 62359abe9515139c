"""The ranking run behind ``python -m unnas.rank``.

Validate everything (names, paths, options) -> load the data -> sample the population -> lock the
run folder (:mod:`unnas.lock`; a second runner exits 2 naming the owner) -> plan jobs -> skip the
jobs that already have a row (``done`` always; ``failed`` / ``diverged`` / ``timeout`` unless
``--retry-failed``) -> run the rest on the chosen executor (:mod:`unnas.runner`), committing one
row per finished job and only then discarding its checkpoints -> ranking table, Spearman /
Kendall with bootstrap CIs, ``results.csv``, ``ranking.json``, the report.

A run killed at any point loses at most the unfinished epochs of the running jobs: rerunning the
same command resumes them from their last epoch checkpoint and skips every committed job.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from unnas import config as config_mod
from unnas.analysis import build_ranking, dumps, fmt_corr
from unnas.config import Config
from unnas.engine import resolve_device
from unnas.errors import UserError
from unnas.lock import Claims, RunLock
from unnas.objectives.base import DataInfo, objective_class
from unnas.precision import with_precision
from unnas.registry import DATASETS, GENERATORS
from unnas.runner import (
    EXECUTION_TRAIN_FIELDS,
    EXECUTORS,
    RETRY_STATUSES,
    SUPERVISED,
    Hooks,
    JobContext,
    available_cores,
    check_ray_address,
    checkpoint_dir,
    data_key,
    dataset_for,
    discard_checkpoints,
    import_plugins,
    job_config,
    make_executor,
    objectives_of,
    plan_jobs,
    run_layout,
)
from unnas.store import Store, summarize
from unnas.tracking import WANDB_MODES, Tracker

_NAME = re.compile(r"[A-Za-z0-9_+\-][A-Za-z0-9._+\-]{0,199}")


def default_name(cfg: Config) -> str:
    d = config_mod.to_dict(cfg)
    d["run"] = {k: v for k, v in d["run"].items() if k in ("pretext", "num_archs", "seeds", "master_seed", "supervised")}
    h = hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:6]
    pre = cfg.run.pretext.replace(",", "+")
    return f"{cfg.model.generator}-{pre}-{cfg.data.name}-{h}"


def validate(cfg: Config) -> None:
    """Everything that can be checked before any work starts (one clear error each)."""
    GENERATORS.get(cfg.model.generator)
    name = cfg.data.name
    if name not in DATASETS and not (name.endswith("-lt") and name[:-3] in DATASETS):
        raise UserError("--data", name, DATASETS.names() + [f"{n}-lt" for n in DATASETS.names()],
                        message=f"unknown dataset {name!r}")
    objectives_of(cfg)
    checks = [("--epochs", cfg.train.epochs, cfg.train.epochs >= 0, "an integer >= 0"),
              ("--steps", cfg.train.steps, cfg.train.steps >= 0, "an integer >= 0"),
              ("--batch-size", cfg.train.batch_size, cfg.train.batch_size > 0, "an integer > 0"),
              ("--lr", cfg.train.lr, cfg.train.lr > 0, "a positive number"),
              ("--num-archs", cfg.run.num_archs, cfg.run.num_archs >= 1, "an integer >= 1"),
              ("--seeds", cfg.run.seeds, cfg.run.seeds >= 1, "an integer >= 1"),
              ("eval.knn_k", cfg.eval.knn_k, cfg.eval.knn_k >= 1, "an integer >= 1"),
              ("eval.knn_t", cfg.eval.knn_t, cfg.eval.knn_t > 0, "a positive number"),
              ("--score", cfg.eval.score, cfg.eval.score in ("knn", "pretext"), "knn, pretext"),
              ("--wandb", cfg.run.wandb, cfg.run.wandb in WANDB_MODES, ", ".join(WANDB_MODES)),
              ("--executor", cfg.run.executor, cfg.run.executor in EXECUTORS, ", ".join(EXECUTORS)),
              ("--workers", cfg.run.workers, cfg.run.workers >= 0, "an integer >= 1 (0 = from the core count)"),
              ("--threads-per-worker", cfg.run.threads_per_worker, cfg.run.threads_per_worker >= 0,
               "an integer >= 1 (0 = automatic)"),
              ("train.threads", cfg.train.threads, cfg.train.threads >= 0, "an integer >= 0"),
              ("train.time_limit", cfg.train.time_limit, cfg.train.time_limit >= 0, "seconds >= 0 (0 = none)"),
              ("--name", cfg.run.name, not cfg.run.name or bool(_NAME.fullmatch(cfg.run.name)),
               "letters, digits and . _ + - (a folder name, not a path)")]
    for field, value, ok, allowed in checks:
        if not ok:
            raise UserError(field, value, allowed)
    if cfg.train.epochs == 0 and cfg.train.steps == 0:
        raise UserError("--epochs", 0, "at least 1 epoch (or --steps > 0)", message="no training budget")
    resolve_device(cfg.run.device)


def prepare_run_dir(cfg: Config) -> Path:
    """Create (or reopen) the run folder; refuse one that holds a different configuration."""
    run_dir = Path(cfg.run.runs_dir) / (cfg.run.name or default_name(cfg))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError("--runs-dir", str(run_dir), "a writable folder", message=f"cannot write ({e.strerror})") from None
    saved = run_dir / "config.yaml"
    if saved.is_file():
        import yaml

        try:
            old = yaml.safe_load(saved.read_text()) or {}
        except yaml.YAMLError:
            old = {}
        if not isinstance(old, dict):
            old = {}
        # only what determines the results: the core sections and the options of the objectives used
        # (a plugin installed later adds sections; execution details may change between runs)
        sections = ("data", "model", "train", "eval", "run", *objectives_of(cfg))
        keep = {"run": ("device", "wandb", "wandb_project", "executor", "workers", "threads_per_worker",
                        "runs_dir", "name"),
                "train": EXECUTION_TRAIN_FIELDS}
        new = config_mod.to_dict(cfg)

        def strip(d: dict) -> dict:
            return {s: {k: v for k, v in (d.get(s) or {}).items() if k not in keep.get(s, ())} for s in sections}

        a, b = strip(old), strip(new)
        if a != b:
            diff = sorted(f"{s}.{k}" for s in sections for k in set(a[s]) | set(b[s]) if a[s].get(k) != b[s].get(k))
            raise UserError("--name", run_dir.name, "a new --name for a different configuration",
                            message=f"run folder {run_dir} holds a run with another configuration "
                                    f"(differs in {', '.join(diff[:4])})")
    return run_dir


def complexity_ranges(model) -> dict:
    """``model.min/max_params/flops`` (0 = no bound) -> ``sample_population``'s range arguments."""
    out = {}
    for what in ("params", "flops"):
        lo, hi = getattr(model, f"min_{what}"), getattr(model, f"max_{what}")
        for bound, v in (("min", lo), ("max", hi)):
            if not v >= 0:
                raise UserError(f"model.{bound}_{what}", v, "a non-negative number (0 = no bound)")
        if lo or hi:
            out[f"{what}_range"] = (lo or None, hi or None)
    return out


HEAVY_CPU_FLOPS = 1e9  # per image: above this, a CPU run gets a hint to bound the population


def complexity_summary(specs, in_channels: int, image_size: int, device_type: str) -> tuple[str, str]:
    """One line with the population's parameter and FLOP ranges (measured on the meta device, in
    milliseconds) and, on a CPU, a hint when some candidate costs more than :data:`HEAVY_CPU_FLOPS`
    per image ("" otherwise)."""
    from unnas.generators.complexity import complexity

    cs = [complexity(s, in_channels, image_size) for s in specs]
    if not cs:
        return "", ""
    p = [c["params"] for c in cs]
    f = [c["flops"] for c in cs]
    line = (f"population: {min(p):,}-{max(p):,} params, {min(f) / 1e6:,.1f}-{max(f) / 1e6:,.1f} MFLOPs per "
            f"{in_channels}x{image_size}x{image_size} image")
    heavy = ""
    if device_type == "cpu" and max(f) > HEAVY_CPU_FLOPS:
        n = sum(x > HEAVY_CPU_FLOPS for x in f)
        heavy = (f"{n} candidate(s) above {HEAVY_CPU_FLOPS / 1e9:g} GFLOPs per image will train slowly on a CPU; "
                 f"--max-flops / --max-params bound the population")
    return line, heavy


def run_ranking(cfg: Config, quiet: bool = False, *, retry_failed: bool = False, join: bool = False,
                ray_address: str = "", plugins: tuple[str, ...] = ()) -> int:
    """Run (or resume) a ranking run; returns the exit status (0, or 130 when interrupted).

    Jobs with a stored row are skipped: ``done`` ones always, ``failed``/``diverged``/``timeout``
    ones unless ``retry_failed`` (then they run again, resuming from their checkpoints). The run
    folder is locked for the whole run (:mod:`unnas.lock`); ``join`` shares it with other runners
    started with ``join``, each running jobs the others have not claimed.
    """
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    import_plugins(plugins)
    validate(cfg)
    cfg = with_precision(cfg)  # "auto" -> what this machine runs: stored, hashed, the same on every executor
    ray_address = check_ray_address(ray_address)
    from unnas.population import sample_population

    data = dataset_for(cfg)  # data errors surface here, before anything is written
    info = DataInfo.of(data)
    objectives = objectives_of(cfg)
    for obj in objectives:
        cls = objective_class(obj)
        cls.check_data(info, cfg.objectives.get(obj))
        cls.check_run(cfg.objectives.get(obj), cfg.train, info)
    in_ch = objective_class(objectives[0]).input_channels(data.channels)
    specs = sample_population(cfg.model.generator, cfg.run.num_archs, cfg.run.master_seed,
                              dict(cfg.model.params), in_channels=in_ch, image_size=data.image_size[0],
                              **complexity_ranges(cfg.model))
    run_dir = prepare_run_dir(cfg)
    lock = RunLock(run_dir, shared=join, log=lambda m: console.print(f"[yellow]{m}[/]"))
    lock.acquire()  # LockedError (exit 2) names the runner that holds the folder
    try:
        return _run_locked(cfg, run_dir, data, specs, objectives, console, quiet, retry_failed, join, ray_address,
                           tuple(plugins))
    finally:
        lock.release()


def _run_locked(cfg, run_dir, data, specs, objectives, console, quiet, retry_failed, join, ray_address,
                plugins) -> int:
    _write_atomic(run_dir / "config.yaml", config_mod.to_yaml(cfg))
    jobs = plan_jobs(cfg, specs)
    with Store(run_dir / "store.sqlite") as store:
        statuses = store.statuses()
        rerun = set(RETRY_STATUSES) if retry_failed else set()
        todo = [j for j in jobs if statuses.get(j.job_id) in rerun or j.job_id not in statuses]
        kept = [j for j in jobs if statuses.get(j.job_id) in RETRY_STATUSES and not retry_failed]
        for j in jobs:  # a crash between a commit and the cleanup can leave checkpoints of finished jobs
            if statuses.get(j.job_id) == "done":
                shutil.rmtree(checkpoint_dir(run_dir, j.job_id), ignore_errors=True)
        ex, workers, threads, plugins = run_layout(cfg, len(todo), plugins)
        run_cfg = job_config(cfg, threads)  # the engine applies the thread count: same arithmetic everywhere
        tracker = Tracker(run_dir, cfg.run.wandb, cfg.run.wandb_project, config_mod.to_dict(cfg), run_dir.name)
        tracker.log("run_start", jobs=len(jobs), todo=len(todo), data=data.summary(), argv=sys.argv, executor=ex,
                    workers=workers, threads=threads, precision=cfg.train.precision, pid=os.getpid(), join=join,
                    retry_failed=retry_failed)
        console.print(f"[bold]unnas.rank[/] {run_dir}  data={data.name} ({len(data.train)} train / "
                      f"{len(data.test)} test)  generator={cfg.model.generator}  objectives={','.join(objectives)}")
        par = ("" if ex == "local" else f" x {workers} workers") + (
            f" (auto, {available_cores()} cores)" if cfg.run.executor == "auto" else "")
        console.print(f"{len(specs)} candidates x {len(objectives)} objectives x {cfg.run.seeds} seed(s) = "
                      f"{len(jobs)} jobs; {len(jobs) - len(todo)} already stored, {len(todo)} to run  "
                      f"\\[executor {ex}{par}, {threads or 'default'} thread(s) per job, {cfg.train.precision}]")
        if kept:
            console.print(f"{len(kept)} failed/diverged/timed-out job(s) kept; --retry-failed runs them again")
        if todo:
            line, heavy = complexity_summary(specs, objective_class(objectives[0]).input_channels(data.channels),
                                             data.image_size[0], resolve_device(cfg.run.device).type)
            console.print(line)
            if heavy:
                console.print(f"[yellow]{heavy}[/]")
        ctx = JobContext(run_cfg, str(run_dir), cfg.run.device, threads, plugins)
        gpus = 1.0 if cfg.run.device.startswith("cuda") else 0.0
        executor = make_executor(ex, workers=workers, threads=threads, ray_address=ray_address, gpus=gpus,
                                 data=data if ex != "local" else None, key=data_key(cfg))
        claims = Claims(run_dir) if join else None
        t0 = time.time()
        try:
            _execute(todo, executor, ctx, store, tracker, console, quiet, claims, rerun, t0)
        except KeyboardInterrupt:
            console.print("interrupted: finished jobs are stored; rerun the same command to resume")
            store.export_csv()
            tracker.finish()
            return 130
        finally:
            if claims is not None:
                claims.release_all()
        store.export_csv()
        rows = store.rows()
        job_ids = {j.job_id for j in jobs}
        rows = [r for r in rows if r.job_id in job_ids]
        rk = build_ranking(rows)
        (run_dir / "ranking.json").write_text(dumps({**rk.to_json(), "status": summarize(rows)}))
        _print_ranking(rk, console, cfg)
        table = rk.table()
        if table:
            cols = list(dict.fromkeys(c for r in table for c in r))  # a candidate with no finished job lacks some
            tracker.table("ranking", cols, [[r.get(c) for c in cols] for r in table])
        # ---- report: the one place where the ranking run writes its report -----------------------
        page = _report(rk, run_dir, cfg, tracker, console)
        tracker.summary(seconds=time.time() - t0,
                        **{f"{o}/spearman": a["spearman"]["value"] for o, a in rk.agreement.items()})
        tracker.finish()
        console.print(f"results: {run_dir / 'results.csv'}  ranking: {run_dir / 'ranking.json'}  "
                      f"store: {run_dir / 'store.sqlite'}" + (f"  report: {page}" if page else ""))
        return 0


def _report(rk, run_dir: Path, cfg: Config, tracker, console) -> Path | None:
    """``unnas.report.write_report`` when it exists (report.html with every plot), else the
    scatter plots alone. A report failure is printed; it never loses the stored results."""
    from unnas import report

    try:
        if hasattr(report, "write_report"):
            return report.write_report([run_dir], tracker=tracker)
        for obj in rk.objectives:
            if rk.supervised:
                png = report.scatter(rk, obj, run_dir / f"scatter_{obj}.png",
                                     "kNN accuracy" if cfg.eval.score == "knn" else "pretext accuracy")
                tracker.image(f"scatter/{obj}", png)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - the results are stored; the report can be rebuilt
        console.print(f"[red]report failed[/] ({type(e).__name__}: {e}); rebuild it with "
                      f"python -m unnas.report {run_dir}")
    return None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _execute(todo, executor, ctx, store, tracker, console, quiet, claims, rerun, t0) -> None:
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=quiet, transient=True)
    running: dict[str, int] = {}

    def claim(job) -> bool:
        """--join: take the job unless another runner holds it or has stored it meanwhile."""
        if not claims.claim(job.job_id):
            progress.advance(overall)
            return False
        stored = store.conn.execute("SELECT status, finished_at FROM jobs WHERE job_id = ?", (job.job_id,)).fetchone()
        if stored is not None and not (stored[0] in rerun and (stored[1] or 0) < t0):
            claims.release(job.job_id)
            progress.advance(overall)
            return False
        return True

    def on_start(job) -> None:
        running[job.job_id] = progress.add_task(f"{job.objective} {job.spec.arch_id} seed {job.seed}", total=1)

    def on_step(job, step, total, info) -> None:
        if job.job_id in running:
            progress.update(running[job.job_id], completed=step, total=total)

    def on_log(job, msg) -> None:
        progress.console.print(f"  [dim]{job.job_id}[/] {msg}")

    hooks = Hooks(claim=claim if claims is not None else None, on_start=on_start, on_step=on_step, on_log=on_log)
    with progress:
        overall = progress.add_task("jobs", total=len(todo))
        for row in executor.run(todo, ctx, hooks):
            store.put(row)  # committed: from here on the job is never run again
            discard_checkpoints(ctx.run_dir, row)
            if claims is not None:
                claims.release(row.job_id)
            tracker.log("job", job_id=row.job_id, arch_id=row.arch_id, objective=row.objective, seed=row.seed,
                        status=row.status, metrics=row.metrics, seconds=row.seconds, error=row.error)
            if row.job_id in running:
                progress.remove_task(running.pop(row.job_id))
            progress.advance(overall)
            m = row.metrics
            detail = (f"score {m.get('score', float('nan')):.3f} own acc {m.get('objective_acc', float('nan')):.3f}"
                      if row.status == "done" else row.error or "")
            progress.console.print(f"  {row.status:8s} {row.objective:12s} {row.arch_id} seed {row.seed} "
                                   f"({row.seconds:.1f} s) {detail}")


def _print_ranking(rk, console: Console, cfg: Config) -> None:
    t = Table(title="ranking (best label-free score first)")
    t.add_column("#", justify="right")
    t.add_column("arch_id")
    t.add_column("params", justify="right")
    t.add_column("MFLOPs", justify="right")
    for o in rk.objectives:
        t.add_column(f"{o} ({cfg.eval.score})", justify="right")
    t.add_column("supervised acc", justify="right")
    pct = lambda v: "-" if v is None or v != v else f"{100 * v:.1f}"  # noqa: E731
    for i, r in enumerate(rk.table(), 1):
        t.add_row(str(i), r["arch_id"], f"{r.get('params') or 0:,}", f"{(r.get('flops') or 0) / 1e6:.1f}",
                  *[pct(r[o]) for o in rk.objectives], pct(r[SUPERVISED]))
    console.print(t)
    for o, ag in rk.agreement.items():
        console.print(f"{o}: Spearman rho {fmt_corr(ag['spearman'])}  Kendall tau {fmt_corr(ag['kendall'])}  "
                      f"(n={ag['n']}, 95% bootstrap CI, permutation p={ag['spearman']['p_perm']:.3g})")
    if rk.failed:
        console.print(f"[yellow]{len(rk.failed)} job(s) did not finish:[/]")
        for r in rk.failed:
            console.print(f"  {r.status} {r.objective} {r.arch_id} seed {r.seed}: {r.error}")
