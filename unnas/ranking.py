"""The ranking run behind ``python -m unnas.rank``.

Validate everything -> sample the population -> plan jobs -> skip the ones already ``done`` in the
run's store -> train and evaluate the rest (one committed row per finished job) -> ranking table,
Spearman / Kendall with bootstrap CIs, ``results.csv``, ``ranking.json``, scatter plots.
"""

from __future__ import annotations

import hashlib
import json
import os
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
from unnas.objectives.base import DataInfo, objective_class
from unnas.registry import DATASETS, GENERATORS
from unnas.report import scatter
from unnas.runner import SUPERVISED, JobContext, dataset_for, execute_local, objectives_of, plan_jobs
from unnas.store import Store, summarize
from unnas.tracking import WANDB_MODES, Tracker

EXECUTORS = ("local",)


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
              ("--executor", cfg.run.executor, cfg.run.executor in EXECUTORS, ", ".join(EXECUTORS))]
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

        old = yaml.safe_load(saved.read_text()) or {}
        new = config_mod.to_dict(cfg)
        keep = ("device", "wandb", "executor", "workers", "threads_per_worker", "runs_dir", "name")
        strip = lambda d: {s: ({k: v for k, v in d.get(s, {}).items() if k not in keep} if s == "run" else d.get(s))  # noqa: E731
                           for s in set(d) | set(new)}
        if strip(old) != strip(new):
            diff = sorted(f"{s}.{k}" for s in new for k in (new[s] or {})
                          if (old.get(s) or {}).get(k) != new[s][k])
            raise UserError("--name", run_dir.name, "a new --name for a different configuration",
                            message=f"run folder {run_dir} holds a run with another configuration "
                                    f"(differs in {', '.join(diff[:4]) or 'objective options'})")
    return run_dir


def run_ranking(cfg: Config, quiet: bool = False) -> int:
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    validate(cfg)
    from unnas.population import sample_population

    data = dataset_for(cfg)  # data errors surface here, before anything is written
    info = DataInfo.of(data)
    objectives = objectives_of(cfg)
    for obj in objectives:
        objective_class(obj).check_data(info)
    in_ch = objective_class(objectives[0]).input_channels(data.channels)
    specs = sample_population(cfg.model.generator, cfg.run.num_archs, cfg.run.master_seed,
                              dict(cfg.model.params), in_channels=in_ch, image_size=data.image_size[0])
    run_dir = prepare_run_dir(cfg)
    (run_dir / "config.yaml").write_text(config_mod.to_yaml(cfg))
    jobs = plan_jobs(cfg, specs)
    store = Store(run_dir / "store.sqlite")
    done = store.done_ids()
    todo = [j for j in jobs if j.job_id not in done]
    tracker = Tracker(run_dir, cfg.run.wandb, cfg.run.wandb_project, config_mod.to_dict(cfg), run_dir.name)
    tracker.log("run_start", jobs=len(jobs), todo=len(todo), data=data.summary(), argv=sys.argv)
    console.print(f"[bold]unnas.rank[/] {run_dir}  data={data.name} ({len(data.train)} train / "
                  f"{len(data.test)} test)  generator={cfg.model.generator}  objectives={','.join(objectives)}")
    console.print(f"{len(specs)} candidates x {len(objectives)} objectives x {cfg.run.seeds} seed(s) = "
                  f"{len(jobs)} jobs; {len(jobs) - len(todo)} already done, {len(todo)} to run")
    ctx = JobContext(config_mod.to_dict(cfg), str(run_dir), cfg.run.device)
    t0 = time.time()
    try:
        _execute(todo, ctx, store, tracker, console, quiet)
    except KeyboardInterrupt:
        console.print("interrupted: finished jobs are stored; rerun the same command to resume")
        store.export_csv()
        tracker.finish()
        return 130
    store.export_csv()
    rows = store.rows()
    job_ids = {j.job_id for j in jobs}
    rows = [r for r in rows if r.job_id in job_ids]
    rk = build_ranking(rows)
    (run_dir / "ranking.json").write_text(dumps({**rk.to_json(), "status": summarize(rows)}))
    _print_ranking(rk, console, cfg)
    for obj in rk.objectives:
        if rk.supervised:
            png = scatter(rk, obj, run_dir / f"scatter_{obj}.png",
                          "kNN accuracy" if cfg.eval.score == "knn" else "pretext accuracy")
            tracker.image(f"scatter/{obj}", png)
    table = rk.table()
    if table:
        cols = list(table[0])
        tracker.table("ranking", cols, [[r[c] for c in cols] for r in table])
    tracker.summary(seconds=time.time() - t0, **{f"{o}/spearman": a["spearman"]["value"] for o, a in rk.agreement.items()})
    tracker.finish()
    console.print(f"results: {run_dir / 'results.csv'}  ranking: {run_dir / 'ranking.json'}  "
                  f"store: {run_dir / 'store.sqlite'}")
    return 0


def _execute(todo, ctx, store, tracker, console, quiet) -> None:
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console, disable=quiet, transient=True)
    with progress:
        overall = progress.add_task("jobs", total=len(todo))
        current = progress.add_task("", total=1)

        def on_start(job):
            progress.update(current, description=f"{job.objective} {job.spec.arch_id} seed {job.seed}",
                            completed=0, total=1)

        def on_step(step, total, info):
            progress.update(current, completed=step, total=total)

        for row in execute_local(todo, ctx, on_start, on_step):
            store.put(row)
            tracker.log("job", job_id=row.job_id, arch_id=row.arch_id, objective=row.objective, seed=row.seed,
                        status=row.status, metrics=row.metrics, seconds=row.seconds, error=row.error)
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
