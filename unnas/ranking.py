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
import sys
import time
from pathlib import Path

from rich.console import Console

from unnas import config as config_mod
from unnas.config import Config
from unnas.engine import resolve_device
from unnas.errors import UserError
from unnas.executors import check_executor_installed, check_ray_address
from unnas.lock import RunLock
from unnas.objectives.base import DataInfo, objective_class
from unnas.outputs import write_json, write_ranking_csv
from unnas.precision import with_precision
from unnas.registry import DATASETS, GENERATORS
from unnas.runner import (
    EXECUTION_TRAIN_FIELDS,
    EXECUTORS,
    dataset_for,
    import_plugins,
    objectives_of,
    pretexts_of,
    proxies_of,
    training_objectives,
)
from unnas.spec import check_generator_kind
from unnas.store import summarize
from unnas.tracking import WANDB_MODES

_NAME = re.compile(r"[A-Za-z0-9_+\-][A-Za-z0-9._+\-]{0,199}")


def default_name(cfg: Config) -> str:
    d = config_mod.to_dict(cfg)
    d["run"] = {k: v for k, v in d["run"].items() if k in ("pretext", "num_archs", "seeds", "master_seed", "supervised",
                                                         "proxies")}
    d.pop("reference", None)  # the comparison table can change; the jobs do not depend on it
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
    check_executor_installed(cfg.run.executor)
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
        sections = ("data", "model", "train", "eval", "run", "budget", "proxy", "search", *training_objectives(cfg),
                    *proxies_of(cfg), cfg.search.strategy)
        keep = {"run": ("device", "wandb", "wandb_project", "executor", "workers", "threads_per_worker",
                        "runs_dir", "name", "ensembles"),
                "eval": ("score",),
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


def complexity_summary(specs, in_channels: int, image_size: int, device_type: str,
                       frames: int = 0) -> tuple[str, str]:
    """One line with the population's parameter and FLOP ranges (measured on the meta device, in
    milliseconds) and, on a CPU, a hint when some candidate costs more than :data:`HEAVY_CPU_FLOPS`
    per image (per clip of ``frames`` frames for video data; "" otherwise)."""
    from unnas.generators.complexity import complexity

    cs = [complexity(s, in_channels, image_size, frames) for s in specs]
    if not cs:
        return "", ""
    p = [c["params"] for c in cs]
    f = [c["flops"] for c in cs]
    unit = f"{frames}x{in_channels}x{image_size}x{image_size} clip" if frames else \
        f"{in_channels}x{image_size}x{image_size} image"
    line = f"population: {min(p):,}-{max(p):,} params, {min(f) / 1e6:,.1f}-{max(f) / 1e6:,.1f} MFLOPs per {unit}"
    heavy = ""
    if device_type == "cpu" and max(f) > HEAVY_CPU_FLOPS:
        n = sum(x > HEAVY_CPU_FLOPS for x in f)
        heavy = (f"{n} candidate(s) above {HEAVY_CPU_FLOPS / 1e9:g} GFLOPs per {unit.split()[-1]} will train slowly "
                 f"on a CPU; --max-flops / --max-params bound the population")
    return line, heavy


def check_scores(cfg: Config) -> None:
    """Proxies, ensembles, the budget and the probe / ranking-column choice, before anything runs."""
    from unnas.jobs import parse_probes
    from unnas.registry import TRAINED_SCORES
    from unnas.scores import BASELINES, parse_ensemble, trained_column
    from unnas.strategies.population import check_halving, sh_rungs

    pretexts, proxies = pretexts_of(cfg), proxies_of(cfg)
    probes = parse_probes(cfg.eval.probes)
    if cfg.eval.score not in ("default", "pretext", *TRAINED_SCORES.names(), *probes):
        raise UserError("--score", cfg.eval.score, ["default", "pretext", *TRAINED_SCORES.names(), *probes],
                        message="the ranking column must be a label-free score or a probe in eval.probes")
    if proxies:
        from unnas.eval.proxies.base import check_loss, check_options

        loss = objective_class(cfg.proxy.loss)
        if loss.uses_labels:
            raise UserError("proxy.loss", cfg.proxy.loss, "a label-free objective", message="proxies must not read labels")
        for name in proxies:  # missing or invalid options: refused here, not once per job
            check_options(name, cfg.objectives.get(name))
            check_loss(name, loss)
    allowed = [*pretexts, *(trained_column(o, t) for o in pretexts for t in TRAINED_SCORES.names()), *proxies,
               *BASELINES]
    for text in cfg.run.ensembles:
        parts = parse_ensemble(text)
        if len(parts) < 2 or len(set(parts)) != len(parts):
            raise UserError("--ensemble", text, "two or more distinct label-free scores, comma-separated")
        for part in parts:
            if part not in allowed:
                raise UserError("--ensemble", part, allowed, message="ensembles combine the run's label-free scores "
                                                                     "(objectives, OBJECTIVE/SCORE of a trained "
                                                                     "network, proxies, params, flops)")
    if cfg.budget.kind not in ("fixed", "sh"):
        raise UserError("--budget", cfg.budget.kind, "fixed, sh")
    if cfg.budget.kind != "sh" and cfg.budget.rungs:
        raise UserError("--rungs", ",".join(map(str, cfg.budget.rungs)), "rungs only with --budget sh",
                        message=f"rungs are successive halving's, and the budget is {cfg.budget.kind}")
    if cfg.budget.kind == "sh":
        if not pretexts:
            raise UserError("--budget", "sh", "a label-free objective to train", message="successive halving needs one")
        if cfg.train.steps:
            raise UserError("--steps", cfg.train.steps, "0 with --budget sh (rungs are in epochs)")
        check_halving(sh_rungs(cfg.budget.rungs, cfg.train.epochs, cfg.budget.eta), proxies=proxies,
                      checkpoint=cfg.train.checkpoint)
        if cfg.budget.score and cfg.budget.score not in [*pretexts, *(ensemble_names(cfg))]:
            raise UserError("budget.score", cfg.budget.score, [*pretexts, *ensemble_names(cfg)])


def check_proxies_kind(cfg: Config, info: DataInfo) -> None:
    """Zero-cost proxies read uint8 image batches ``(B, C, H, W)``: refuse them on clips before any
    job, naming the label-free objectives that work on this data."""
    proxies = proxies_of(cfg)
    if not proxies or info.kind == "image":
        return
    from unnas.objectives.base import describe
    from unnas.registry import OBJECTIVES

    fit = [n for n in OBJECTIVES.names() if info.kind in getattr(OBJECTIVES.get(n), "data_kinds", ("image",))
           and not OBJECTIVES.get(n).uses_labels]
    raise UserError("--proxies", ",".join(proxies), f"--pretext {', '.join(fit)} (with --proxies none)",
                    message=f"zero-cost proxies work on image batches, and this dataset holds {describe(info)}")


def with_score(cfg: Config) -> Config:
    """``cfg`` with ``eval.score`` ``default`` resolved to the first objective's ``default_score``
    (``pretext`` without an objective: the first proxy then ranks; and under successive halving,
    whose rungs choose survivors by the objective's own score: a trained-network score would compare
    survivors' later rungs with the others' first)."""
    if cfg.eval.score != "default":
        return cfg
    from unnas.objectives.base import default_score

    first = next(iter(pretexts_of(cfg)), "")
    chosen = default_score(first) if first and cfg.budget.kind != "sh" else "pretext"
    return config_mod.replace(cfg, eval={"score": chosen})


def ensemble_names(cfg: Config) -> list[str]:
    from unnas.scores import ensemble_name, parse_ensemble

    return [ensemble_name(parse_ensemble(e)) for e in cfg.run.ensembles]


def resolve_budget(cfg: Config) -> tuple[Config, list[int]]:
    """Successive halving trains on one schedule spanning the last rung: ``train.epochs`` becomes it."""
    if cfg.budget.kind != "sh":
        return cfg, []
    from unnas.strategies.population import sh_rungs

    rungs = sh_rungs(cfg.budget.rungs, cfg.train.epochs, cfg.budget.eta)
    cfg = config_mod.replace(cfg, train={"epochs": rungs[-1]}, budget={"rungs": rungs})
    return cfg, rungs


def run_ranking(cfg: Config, quiet: bool = False, *, retry_failed: bool = False, join: bool = False,
                ray_address: str = "", plugins: tuple[str, ...] = ()) -> int:
    """:func:`rank_run`'s exit status (0, or 130 when interrupted)."""
    return rank_run(cfg, quiet, retry_failed=retry_failed, join=join, ray_address=ray_address, plugins=plugins)[0]


def rank_run(cfg: Config, quiet: bool = False, *, retry_failed: bool = False, join: bool = False,
             ray_address: str = "", plugins: tuple[str, ...] = ()) -> tuple[int, Path]:
    """Run (or resume) a ranking run; returns the exit status (0, or 130 when interrupted) and the run folder.

    Jobs with a stored row are skipped: ``done`` ones always, ``failed``/``diverged``/``timeout``
    ones unless ``retry_failed`` (then they run again, resuming from their checkpoints). The run
    folder is locked for the whole run (:mod:`unnas.lock`); ``join`` shares it with other runners
    started with ``join``, each running jobs the others have not claimed.
    """
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    import_plugins(plugins)
    validate(cfg)
    check_scores(cfg)
    cfg = with_score(cfg)  # "default" -> the first objective's measured best score: stored as chosen
    cfg = with_precision(cfg)  # "auto" -> what this machine runs: stored, hashed, the same on every executor
    cfg, rungs = resolve_budget(cfg)
    ray_address = check_ray_address(ray_address)
    from unnas.population import sample_population

    data = dataset_for(cfg)  # data errors surface here, before anything is written
    info = DataInfo.of(data)
    objectives = objectives_of(cfg)
    check_generator_kind(cfg.model.generator, info.kind)
    check_proxies_kind(cfg, info)
    checked = list(objectives) + ([cfg.proxy.loss] if proxies_of(cfg) else [])
    for obj in dict.fromkeys(checked):
        cls = objective_class(obj)
        cls.check_kind(info)
        cls.check_data(info, cfg.objectives.get(obj))
        cls.check_run(cfg.objectives.get(obj), cfg.train, info)
    in_ch = objective_class(checked[0]).input_channels(data.channels)
    specs = sample_population(cfg.model.generator, cfg.run.num_archs, cfg.run.master_seed,
                              dict(cfg.model.params), in_channels=in_ch, image_size=data.image_size[0],
                              frames=info.frames, vary=dict(cfg.model.vary), **complexity_ranges(cfg.model))
    if cfg.reference.path:  # a bad table, or a candidate absent from it: refused before any job
        from unnas.analysis import reference_values

        reference_values(config_mod.to_dict(cfg)["reference"], specs)
    run_dir = prepare_run_dir(cfg)
    lock = RunLock(run_dir, shared=join, log=lambda m: console.print(f"[yellow]{m}[/]"))
    lock.acquire()  # LockedError (exit 2) names the runner that holds the folder
    try:
        return _run_locked(cfg, run_dir, data, specs, objectives, rungs, console, quiet, retry_failed, join,
                           ray_address, tuple(plugins)), run_dir
    finally:
        lock.release()


def _run_locked(cfg, run_dir, data, specs, objectives, rungs, console, quiet, retry_failed, join, ray_address,
                plugins) -> int:
    from unnas.analysis import ranking_of
    from unnas.registry import STRATEGIES
    from unnas.session import Session
    from unnas.strategies.base import SearchSpace
    from unnas.strategies.loop import drive
    from unnas.strategies.population import PopulationOptions
    from unnas.summary import print_ranking, round_line

    proxies = proxies_of(cfg)
    planned = len(specs) * cfg.run.seeds * max(1, len(objectives) + len(proxies))  # not what is left: resume keeps the layout
    with Session(cfg, run_dir, data, console, quiet, retry_failed, join, ray_address, plugins, jobs=planned) as ses:
        ses.start(candidates=len(specs), rungs=rungs)
        console.print(f"[bold]unnas rank[/] {run_dir}  data={data.name} ({len(data.train)} train / "
                      f"{len(data.test)} test)  generator={cfg.model.generator}  "
                      f"objectives={','.join(objectives) or 'none'}" + (f"  proxies={','.join(proxies)}" if proxies else "")
                      + (f"  reference={cfg.reference.path}" if cfg.reference.path else ""))
        budget = (f"successive halving: rungs {rungs} epochs, eta {cfg.budget.eta}" if rungs
                  else "no training" if not objectives
                  else f"{cfg.train.steps} steps" if cfg.train.steps else f"{cfg.train.epochs} epochs")
        console.print(f"{len(specs)} candidates x {cfg.run.seeds} seed(s); {budget}  {ses.layout}")
        line, heavy = complexity_summary(specs, objective_class((objectives or [cfg.proxy.loss])[0]).input_channels(
            data.channels), data.image_size[0], resolve_device(cfg.run.device).type, data.frames)
        console.print(line)
        if heavy:
            console.print(f"[yellow]{heavy}[/]")
        rounds = ses.rounds(select=cfg.budget.score, rungs=rungs,
                            on_round=lambda k, jobs, todo: console.print(round_line(k, rungs, jobs, todo)))
        name = "sh" if rungs else "fixed"
        strategy = STRATEGIES.get(name)(SearchSpace(specs[0].generator, {}),
                                        PopulationOptions(tuple(specs), tuple(rungs), cfg.budget.eta),
                                        cfg.run.master_seed)
        try:
            drive(strategy, rounds)
        except KeyboardInterrupt:
            console.print("interrupted: finished jobs are stored; rerun the same command to resume")
            ses.store.export_csv()
            ses.tracker.finish()
            return 130
        rounds.cleanup()
        ses.store.export_csv()
        job_ids = {j.job_id for j in rounds.jobs}
        rows = [r for r in ses.store.rows() if r.job_id in job_ids]
        rk, _ = ranking_of(rows, ses.cfg_dict, strict=True, objective_order=objectives)
        write_json(run_dir / "ranking.json", {**rk.to_json(), "status": summarize(rows), "rungs": rungs,
                                              "provenance": ses.provenance})
        write_ranking_csv(run_dir / "ranking.csv", rk)
        print_ranking(rk, console)
        table = rk.table()
        if table:
            cols = list(dict.fromkeys(c for r in table for c in r))  # a candidate with no finished job lacks some
            ses.tracker.table("ranking", cols, [[r.get(c) for c in cols] for r in table])
        # ---- report: the one place where the ranking run writes its report -----------------------
        page = write_run_report(run_dir, ses.tracker, console)
        ses.tracker.summary(seconds=time.time() - ses.t0,
                            **{f"{o}/spearman": a["spearman"]["value"] for o, a in rk.agreement.items()})
        ses.tracker.finish()
        console.print(f"results: {run_dir / 'results.csv'}  ranking: {run_dir / 'ranking.json'} (and .csv)  "
                      f"store: {run_dir / 'store.sqlite'}" + (f"  report: {page}" if page else ""))
        return 0


def write_run_report(run_dir: Path, tracker, console) -> Path | None:
    """``report.html`` with every plot; a report failure is printed, it never loses the stored results."""
    from unnas import report

    try:
        return report.write_report([run_dir], tracker=tracker)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - the results are stored; the report can be rebuilt
        console.print(f"[red]report failed[/] ({type(e).__name__}: {e}); rebuild it with "
                      f"unnas report {run_dir}")
    return None
