"""A supernet search as a run folder: the work behind ``python -m unnas.search --method ...``.

Configuration: the sections of ``unnas.rank`` (``data``, ``model``, ``train``, ``eval``, ``run``,
one per objective) with ``search.method`` (the section :class:`unnas.config.SearchConfig`, shared
with strategy searches) and one section per search method (``darts``, ``dmasking``: their
registered option dataclasses). The ``train`` section of a search has DARTS's
defaults for the weights (:class:`SearchTrainConfig`); the search seed is ``run.master_seed``.

Folder ``runs/<name>/`` (default name ``search-<method>-<generator>-<objective>-<data>-<hash>``):
``config.yaml``; ``checkpoints/epoch_N.pt`` (the two newest; a rerun of the same command resumes
from them, and once the search is complete only derives and writes the outputs again);
``result.json`` (the derived ArchSpec JSON and arch_id, its complexity, the per-epoch history,
the final architecture probabilities, timings); ``trajectory.png``; ``log.jsonl``
(:class:`~unnas.tracking.Tracker`, mirrored to W&B when asked). The folder is locked while a
search runs (:class:`~unnas.lock.RunLock`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml
from omegaconf import OmegaConf

from unnas import config as config_mod
from unnas.config import Config, TrainConfig
from unnas.errors import UserError
from unnas.registry import SEARCH_METHODS


@dataclass(frozen=True)
class SearchTrainConfig(TrainConfig):
    """The weights' SGD in a search (DARTS: lr 0.025 cosine, momentum 0.9, weight decay 3e-4,
    gradient norm clipped at 5)."""

    epochs: int = 10
    lr: float = 0.025
    nesterov: bool = False
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    precise_bn: int = 0


@dataclass(frozen=True)
class SupernetConfig:
    """Everything a supernet search uses: the core config, the method and its options."""

    core: Config
    method: str
    options: Any

    def to_dict(self) -> dict:
        d = config_mod.to_dict(self.core)
        d[self.method] = dataclasses.asdict(self.options)
        return d


def schema():
    cfg = config_mod.schema()
    OmegaConf.set_struct(cfg, False)
    cfg.train = OmegaConf.structured(SearchTrainConfig)
    for name in SEARCH_METHODS.names():
        cfg[name] = OmegaConf.structured(SEARCH_METHODS.meta(name)["config"])
    for key in ("train", *SEARCH_METHODS.names()):
        OmegaConf.set_readonly(cfg[key], False)
    OmegaConf.set_struct(cfg, True)
    OmegaConf.set_struct(cfg.model.params, False)
    return cfg


def load(path: str | Path | None = None, overrides: Iterable[str] = (), base: dict | None = None) -> SupernetConfig:
    """Defaults <- ``base`` (command-line options) <- YAML file <- dotted overrides."""
    node = config_mod.merge_sources(schema(), path, overrides, base)
    method = node.search.method
    if node.search.strategy:
        raise UserError("--strategy", node.search.strategy, None,
                        message="a supernet search (--method) has no strategy; give --method or --strategy, not both")
    if not method:
        raise UserError("--method", method, SEARCH_METHODS.names(), message="a supernet search needs a method")
    SEARCH_METHODS.get(method)  # an unknown method lists the registered ones
    return SupernetConfig(config_mod.to_config(node), method, OmegaConf.to_object(node[method]))


def default_name(sc: SupernetConfig) -> str:
    d = sc.to_dict()
    d["run"] = {"pretext": sc.core.run.pretext, "master_seed": sc.core.run.master_seed}
    h = hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:6]
    return f"search-{sc.method}-{sc.core.model.generator}-{sc.core.run.pretext}-{sc.core.data.name}-{h}"


def check_saved(run_dir: Path, sc: SupernetConfig) -> None:
    """Refuse a run folder whose ``config.yaml`` holds a search with another method or options
    (the core sections are compared by :func:`unnas.ranking.prepare_run_dir`)."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return
    try:
        old = yaml.safe_load(saved.read_text()) or {}
    except yaml.YAMLError:
        old = {}
    old = old if isinstance(old, dict) else {}
    new = sc.to_dict()
    diff = sorted(f"{s}.{k}" for s in ("search", sc.method) for k in set(old.get(s) or {}) | set(new[s])
                  if (old.get(s) or {}).get(k) != new[s].get(k))
    if diff:
        raise UserError("--name", run_dir.name, "a new --name for a different configuration",
                        message=f"run folder {run_dir} holds a search with another configuration "
                                f"(differs in {', '.join(diff[:4])})")


def prepare(sc: SupernetConfig) -> Path:
    """Create (or reopen) the run folder; refuse one that holds another search."""
    from unnas.ranking import prepare_run_dir

    core = sc.core if sc.core.run.name else config_mod.replace(sc.core, run={"name": default_name(sc)})
    run_dir = prepare_run_dir(core)
    check_saved(run_dir, sc)
    return run_dir


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def validate(sc: SupernetConfig) -> None:
    """Everything checkable before data is loaded (one clear error each)."""
    from unnas.ranking import validate as validate_core
    from unnas.search.loop import make_method

    validate_core(sc.core)
    names = [p.strip() for p in sc.core.run.pretext.split(",") if p.strip()]
    if len(names) != 1:
        raise UserError("--pretext", sc.core.run.pretext, "one objective (a search trains one supernet)")
    method = make_method(sc.method, sc.options)
    if sc.core.model.generator not in method.spaces:
        raise UserError("--generator", sc.core.model.generator, sorted(method.spaces),
                        message=f"{sc.method} has no supernet for generator {sc.core.model.generator!r}")
    if sc.core.train.steps:
        raise UserError("--steps", sc.core.train.steps, "--epochs (a search's budget is in epochs)")


def run_search(sc: SupernetConfig, quiet: bool = False) -> int:
    """Run (or resume) the search of ``sc`` in its run folder; returns the exit status."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from unnas.data import load_dataset
    from unnas.engine import resolve_device
    from unnas.executors import resolve_parallelism
    from unnas.lock import RunLock
    from unnas.outputs import write_json, write_provenance
    from unnas.search.loop import run_supernet_search
    from unnas.search.plot import trajectory_plot
    from unnas.strategies.base import SearchSpace
    from unnas.tracking import Tracker

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    validate(sc)
    space = SearchSpace(sc.core.model.generator, dict(sc.core.model.params))
    device = resolve_device(sc.core.run.device)
    data = load_dataset(sc.core.data)  # data errors surface here, before anything is written
    _, threads = resolve_parallelism(sc.core)
    core = config_mod.replace(sc.core, train={"threads": threads})
    run_dir = prepare(sc)
    with RunLock(run_dir, log=lambda m: console.print(f"[yellow]{m}[/]")):
        saved = sc.to_dict()
        write_atomic(run_dir / "config.yaml", yaml.safe_dump(saved, sort_keys=False))
        write_provenance(run_dir, device=str(device))
        tracker = Tracker(run_dir, core.run.wandb, core.run.wandb_project, saved, run_dir.name)
        objective = core.run.pretext.strip()
        tracker.log("search_start", method=sc.method, generator=space.generator, objective=objective,
                    data=data.summary(), argv=sys.argv, threads=threads, pid=os.getpid())
        console.print(f"[bold]unnas search[/] {run_dir}  method={sc.method}  generator={space.generator}  "
                      f"objective={objective}  data={data.name} ({len(data.train)} train)", soft_wrap=True)
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, disable=quiet, transient=True)
        def on_epoch(rec: dict) -> None:
            numbers = {k: v for k, v in rec.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            tracker.log("epoch", objective=f"search-{objective}", metrics=numbers, arch_id=rec["arch_id"],
                        derived=rec["derived"], probabilities=rec["probabilities"])
            progress.console.print(f"  epoch {rec['epoch']}: weights loss {rec['weight_loss']:.4f}"
                                   + (f", architecture loss {rec['arch_loss']:.4f}" if rec["arch_trained"] else
                                      " (architecture frozen)") + f", derived {rec['arch_id']}")

        def on_step(step: int, total: int, info: dict) -> None:
            progress.update(task, completed=step, total=total,
                            description=f"epoch {info['epoch']} loss {info['loss']:.3f}")

        with progress:
            task = progress.add_task("search", total=None)
            result = run_supernet_search(sc.method, space, objective, data, core, options=sc.options,
                                         seed=core.run.master_seed, checkpoint_dir=run_dir / "checkpoints",
                                         progress=on_step, device=device, config=saved,
                                         log=lambda m: progress.console.print(f"  [dim]{m}[/]"),
                                         on_epoch=on_epoch)
        if result.resumed_from_epoch:
            console.print(f"  resumed from the checkpoint of epoch {result.resumed_from_epoch}")
        write_json(run_dir / "result.json", result.to_dict())
        png = trajectory_plot(result, run_dir / "trajectory.png")
        tracker.image("trajectory", png)
        tracker.summary(arch_id=result.spec.arch_id, spec=result.spec.to_json(), params=result.complexity["params"],
                        flops=result.complexity["flops"], cpu_seconds=result.cpu_seconds)
        tracker.finish()
    c = result.complexity
    console.print(f"derived {result.spec.generator} network {result.spec.arch_id}: "
                  f"{c['params']:,} params, {c['flops'] / 1e6:,.2f} MFLOPs per {data.channels}x"
                  f"{data.image_size[0]}x{data.image_size[1]} image; {result.cpu_seconds:,.0f} CPU s")
    console.print(f"spec: {result.spec.to_json()}", soft_wrap=True)
    console.print(f"train it: python -m unnas.rank --generator {result.spec.generator} --num-archs 1 "
                  f"--params {rank_params(result.spec.params)}", soft_wrap=True)
    console.print(f"results: {run_dir / 'result.json'}  plot: {run_dir / 'trajectory.png'}", soft_wrap=True)
    return 0


def rank_params(params: dict) -> str:
    """``--params`` words that fix every parameter of a derived spec (JSON values, shell-quoted)."""
    import shlex

    return " ".join(shlex.quote(f"{k}={json.dumps(v, separators=(',', ':'))}") for k, v in params.items())
