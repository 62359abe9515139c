"""A strategy search (``python -m unnas.search --strategy random|evolution|lanas``): the same job
loop, executors and store as a ranking run, driven by a registered strategy.

Each round's proposals run as jobs (:class:`unnas.rounds.RoundRunner`: the label-free objectives,
and once per candidate its proxies and, when asked, its supervised reference); a proposal is scored
by ``search.score`` (default: the first objective's label-free score; any label-free column of the
run, an ensemble, ``supervised`` for the same search driven by labels (``--supervised``; without it
no supervised job runs), or ``reference`` to use a published table as an oracle, which runs no job
at all). A killed search reruns the same command:
the store answers the rounds it already ran, so the strategy proposes exactly what it proposed
before and no candidate is trained twice.

``search.time_budget`` (seconds of job time, summed over the evaluated candidates as the store
records them, so a resumed search stops where the uninterrupted one would) ends a search early;
``search.clock`` says which seconds: ``wall`` (each job's wall time) or ``cpu`` (each job's CPU time,
all its threads; a job that did not finish counts its wall time).

Outputs in the run folder, beside the ranking run's (store, results.csv, ranking.json of the
evaluated candidates, report): ``search.json`` (the trajectory: per evaluated candidate its score,
the best score so far, cumulative job seconds, its reference accuracy when a table is given; the
best candidate with its spec, complexity, reference accuracy and percentile in the table) and
``search_trajectory.png``.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from rich.console import Console

from unnas import config as config_mod
from unnas.analysis import ranking_of
from unnas.config import Config
from unnas.errors import UserError
from unnas.executors import check_ray_address
from unnas.lock import RunLock
from unnas.objectives.base import DataInfo, objective_class
from unnas.outputs import write_json, write_ranking_csv
from unnas.registry import STRATEGIES
from unnas.runner import dataset_for, import_plugins, objectives_of, pretexts_of, proxies_of
from unnas.scores import REFERENCE, SUPERVISED
from unnas.store import summarize
from unnas.strategies.base import Observation, Proposal, SearchSpace, Strategy
from unnas.strategies.loop import drive, flatten

ORACLE = REFERENCE


@dataclass
class TimeBudget(Strategy):
    """Ends ``inner`` once the observed candidates' job seconds reach ``seconds`` (0 = no limit);
    ``clock`` names the metric counted: ``wall`` (``seconds``) or ``cpu`` (``cpu_seconds``)."""

    inner: Strategy
    seconds: float
    clock: str = "wall"

    def propose(self, history: Sequence[Sequence[Observation]]) -> list[Proposal]:
        spent = sum(job_seconds(o, self.clock) for o in flatten(history))
        if self.seconds and spent >= self.seconds:
            return []
        return self.inner.propose(history)


CLOCKS = ("wall", "cpu")


def job_seconds(o: Observation, clock: str) -> float:
    """The job seconds of one observation on ``clock`` (wall or cpu)."""
    return float(o.metrics.get("cpu_seconds" if clock == "cpu" else "seconds", 0.0))


def check_search(cfg: Config) -> None:
    s = cfg.search
    if not s.strategy:
        raise UserError("--strategy", s.strategy, [n for n in STRATEGIES.names() if n not in ("fixed", "sh")],
                        message="a strategy search needs a strategy")
    if s.method:
        raise UserError("--method", s.method, None, message="a strategy search (--strategy) has no supernet method; "
                        "give --method or --strategy, not both")
    STRATEGIES.get(s.strategy)
    if cfg.model.vary:
        raise UserError("--vary", " ".join(cfg.model.vary), None, message="a strategy search explores the generator's "
                        "own space; fix parameters with --params (--vary draws a unnas rank population)")
    if s.strategy in ("fixed", "sh"):
        raise UserError("--strategy", s.strategy, [n for n in STRATEGIES.names() if n not in ("fixed", "sh")],
                        message="fixed populations and successive halving are ranking runs (python -m unnas.rank)")
    if not s.time_budget >= 0:
        raise UserError("search.time_budget", s.time_budget, "seconds >= 0 (0 = none)")
    if s.clock not in CLOCKS:
        raise UserError("search.clock", s.clock, list(CLOCKS))
    if s.score == ORACLE:
        if not cfg.reference.path:
            raise UserError("--score", ORACLE, "a label-free score, or reference together with --reference FILE")
        return
    allowed = [*pretexts_of(cfg), *proxies_of(cfg), *_ensembles(cfg)] + ([SUPERVISED] if _supervised(cfg) else [])
    if s.score and s.score not in allowed:
        raise UserError("--score", s.score, allowed + ["reference (with --reference)"])
    if not allowed:
        raise UserError("--pretext", cfg.run.pretext, "an objective, a proxy, --score reference or supervised",
                        message="nothing scores the candidates")


def _ensembles(cfg: Config) -> list[str]:
    from unnas.ranking import ensemble_names

    return ensemble_names(cfg)


def _supervised(cfg: Config) -> bool:
    return "supervised" in objectives_of(cfg)


def run_search(cfg: Config, quiet: bool = False, *, retry_failed: bool = False, join: bool = False,
               ray_address: str = "", plugins: tuple[str, ...] = ()) -> int:
    """Run (or resume) a strategy search; returns the exit status (0, or 130 when interrupted)."""
    from unnas.precision import with_precision
    from unnas.ranking import check_proxies_kind, check_scores, prepare_run_dir, validate

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    import_plugins(plugins)
    oracle = cfg.search.score == ORACLE
    if oracle:  # nothing is trained: the table answers
        cfg = config_mod.replace(cfg, run={"pretext": "none", "supervised": False, "proxies": ""})
    elif cfg.run.supervised is None:  # a search trains the supervised reference only when asked
        cfg = config_mod.replace(cfg, run={"supervised": False})
    if not oracle:
        validate(cfg)
        check_scores(cfg)
        cfg = with_precision(cfg)
    check_search(cfg)
    cfg = resolve_round_size(cfg, plugins)
    ray_address = check_ray_address(ray_address)
    space = SearchSpace(cfg.model.generator, dict(cfg.model.params))
    options = cfg.objectives.get(cfg.search.strategy)
    strategy = TimeBudget(STRATEGIES.get(cfg.search.strategy)(space, options, cfg.run.master_seed),
                          cfg.search.time_budget, cfg.search.clock)
    table = _table(cfg) if cfg.reference.path else None
    data = None
    if not oracle:
        data = dataset_for(cfg)
        info = DataInfo.of(data)
        check_proxies_kind(cfg, info)
        for obj in dict.fromkeys(objectives_of(cfg) + ([cfg.proxy.loss] if proxies_of(cfg) else [])):
            cls = objective_class(obj)
            cls.check_kind(info)
            cls.check_data(info, cfg.objectives.get(obj))
            cls.check_run(cfg.objectives.get(obj), cfg.train, info)
    if not cfg.run.name:
        from unnas.ranking import default_name

        cfg = config_mod.replace(cfg, run={"name": f"search-{cfg.search.strategy}-{default_name(cfg)}"})
    run_dir = prepare_run_dir(cfg)
    lock = RunLock(run_dir, shared=join, log=lambda m: console.print(f"[yellow]{m}[/]"))
    lock.acquire()
    try:
        return _search_locked(cfg, run_dir, data, space, strategy, table, console, quiet, retry_failed, join,
                              ray_address, plugins)
    finally:
        lock.release()


def resolve_round_size(cfg: Config, plugins: tuple[str, ...] = ()) -> Config:
    """``<strategy>.round_size=0`` (the default) becomes the run's number of workers (the executor
    layout a :class:`unnas.session.Session` will use; 1 for a search the table answers): every
    worker has a proposal to evaluate in every round. The resolved number is part of the saved
    config, so resuming with another number of workers is refused instead of proposing differently."""
    from unnas.executors import run_layout

    name = cfg.search.strategy
    if getattr(cfg.objectives.get(name), "round_size", None) != 0:
        return cfg
    workers = 1 if cfg.search.score == ORACLE else run_layout(cfg, None, plugins)[1]
    return config_mod.replace(cfg, **{name: {"round_size": int(workers)}})


def _table(cfg: Config):
    from unnas.references import load_reference

    ref = config_mod.to_dict(cfg)["reference"]
    return load_reference(ref["path"], ref.get("key_column", ""), ref.get("value_column", "")).canonical(
        cfg.model.generator)


def _oracle(table, space: SearchSpace):
    from unnas.references import structure_of

    def evaluate(proposals: list[Proposal]) -> list[Observation]:
        out = []
        for p in proposals:
            v = table.values.get(structure_of(p.spec))
            if v is None:
                raise UserError("--reference", table.path, "a table holding every network of the space",
                                message=f"{p.spec.arch_id} ({structure_of(p.spec)}) is absent from the table")
            out.append(Observation(p.spec, p.rung, float(v), "done", {"seconds": 0.0}))
        return out

    return evaluate


def _search_locked(cfg, run_dir, data, space, strategy, table, console, quiet, retry_failed, join, ray_address,
                   plugins) -> int:
    from unnas.ranking import write_run_report
    from unnas.session import Session, write_atomic
    from unnas.summary import print_ranking

    s = cfg.search
    t0, c0 = time.time(), _cpu()
    console.print(f"[bold]unnas search[/] {run_dir}  strategy={s.strategy}  generator={cfg.model.generator}  "
                  f"score={s.score or 'the first objective'}" + (f"  reference={cfg.reference.path}" if table else ""))
    if s.score == ORACLE:
        write_atomic(run_dir / "config.yaml", config_mod.to_yaml(cfg))
        history = drive(strategy, _oracle(table, space))
        _finish(cfg, run_dir, history, table, console, t0, c0, rows=[])
        return 0
    with Session(cfg, run_dir, data, console, quiet, retry_failed, join, ray_address, plugins) as ses:
        ses.start(strategy=s.strategy)
        console.print(f"data={data.name} ({len(data.train)} train / {len(data.test)} test)  "
                      f"objectives={','.join(objectives_of(cfg)) or 'none'}  {ses.layout}")
        rounds = ses.rounds(select=s.score)
        try:
            history = drive(strategy, rounds, on_round=lambda k, obs: console.print(_round_line(k, obs)))
            ses.stop_workers()  # search.json counts their CPU seconds
        except KeyboardInterrupt:
            console.print("interrupted: finished jobs are stored; rerun the same command to resume")
            ses.store.export_csv()
            ses.tracker.finish()
            return 130
        ses.store.export_csv()
        ids = {j.job_id for j in rounds.jobs}
        rows = [r for r in ses.store.rows() if r.job_id in ids]
        rk, _ = ranking_of(rows, ses.cfg_dict, strict=False, objective_order=objectives_of(cfg))
        write_json(run_dir / "ranking.json", {**rk.to_json(), "status": summarize(rows), "provenance": ses.provenance})
        write_ranking_csv(run_dir / "ranking.csv", rk)
        print_ranking(rk, console)
        _finish(cfg, run_dir, history, table, console, t0, c0, rows=rows)
        write_run_report(run_dir, ses.tracker, console)
        ses.tracker.finish()
    return 0


def _cpu() -> float:
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _round_line(k: int, obs: list[Observation]) -> str:
    best = max((o.score for o in obs if o.ok), default=math.nan)
    return f"round {k + 1}: {len(obs)} candidate(s), best score {best:.4g}"


def trajectory(history, table=None) -> list[dict]:
    """Per evaluated candidate, in order: its score, the best so far, cumulative job seconds (wall
    and CPU)."""
    from unnas.references import structure_of

    out, best, spent, cpu = [], -math.inf, 0.0, 0.0
    for i, o in enumerate(flatten(history), 1):
        spent += job_seconds(o, "wall")
        cpu += job_seconds(o, "cpu")
        if o.ok and o.score > best:
            best = o.score
        point = {"n": i, "arch_id": o.spec.arch_id, "score": o.score, "status": o.status, "best": best,
                 "job_seconds": spent, "job_cpu_seconds": cpu}
        if table is not None:
            point["reference"] = table.values.get(structure_of(o.spec))
        out.append(point)
    return out


def percentile(table, value: float) -> float:
    """The percentile of a network of the table with accuracy ``value``: the share of the table's
    *other* networks with a lower accuracy, ties counted half (0 = the worst, 100 = the best)."""
    vals = list(table.values.values())
    lower, ties = sum(v < value for v in vals), sum(v == value for v in vals)
    return 100.0 * (lower + 0.5 * max(ties - 1, 0)) / max(len(vals) - 1, 1)


def _finish(cfg, run_dir: Path, history, table, console, t0: float, c0: float, rows) -> None:
    from unnas.generators.complexity import complexity
    from unnas.references import structure_of

    traj = trajectory(history, table)
    done = [o for o in flatten(history) if o.ok]
    result = {"strategy": cfg.search.strategy, "score": cfg.search.score or "first objective",
              "evaluated": len(traj), "wall_seconds": time.time() - t0, "cpu_seconds": _cpu() - c0,
              "job_seconds": traj[-1]["job_seconds"] if traj else 0.0,
              "job_cpu_seconds": traj[-1]["job_cpu_seconds"] if traj else 0.0, "clock": cfg.search.clock,
              "trajectory": traj}
    if done:
        best = max(done, key=lambda o: (o.score, [-ord(c) for c in o.spec.arch_id]))
        b = {"arch_id": best.spec.arch_id, "spec": best.spec.to_json(), "structure": structure_of(best.spec),
             "score": best.score, **complexity(best.spec)}
        if table is not None:
            acc = table.values.get(b["structure"])
            b["reference"] = acc
            b["percentile"] = percentile(table, acc) if acc is not None else None
        result["best"] = b
        line = f"best: {b['arch_id']} {b['structure']} score {best.score:.4g}"
        if table is not None and b.get("reference") is not None:
            line += f"; {Path(table.path).name} accuracy {100 * b['reference']:.2f} (percentile {b['percentile']:.2f})"
        console.print(line)
        console.print(f"spec: {b['spec']}")
    write_json(run_dir / "search.json", result)
    try:
        from unnas.report import trajectory_plot

        trajectory_plot(result, run_dir / "search_trajectory.png")
    except Exception as e:  # noqa: BLE001 - the results are stored; the plot can be redrawn
        console.print(f"[red]trajectory plot failed[/] ({type(e).__name__}: {e})")
    console.print(f"search: {run_dir / 'search.json'}  evaluated {len(traj)} candidate(s) in "
                  f"{result['wall_seconds']:.0f} s")

