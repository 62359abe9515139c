"""A report in Weights & Biases: the runs' JSON-lines logs replayed, the report's tables as
``wandb.Table`` and its plots as ``wandb.Image`` (``unnas report --wandb offline|online``)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from unnas.analysis import Analysis
from unnas.scores import REFERENCE


def _clean(v: Any) -> Any:
    if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    return v


def wandb_tables(an: Analysis) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """The report's tables as ``key -> (columns, rows)`` with plain values (NaN -> None)."""
    rk = an.ranking
    objs = [n for n in rk.columns if rk.columns[n].kind != "baseline"]
    cols = ["arch_id", "generator", "params", "flops", *objs, REFERENCE]
    ranking = [[a, rk.generators.get(a), rk.complexity.get(a, {}).get("params"), rk.complexity.get(a, {}).get("flops"),
                *[_clean(rk.column(o, [a])[0]) for o in [*objs, REFERENCE]]] for a in rk.arch_ids]
    comp_cols = ["name", "kind", "uses_labels", "n", "spearman", "spearman_lo", "spearman_hi", "kendall", "kendall_lo",
                 "kendall_hi", "p_perm", "pairwise_accuracy", "noise_ceiling", "best"]
    comp = []
    for r in an.comparison:
        ag = r["agreement"]
        comp.append([_clean(x) for x in (r["name"], r["kind"], r.get("uses_labels"), ag["n"], ag["spearman"]["value"],
                                         ag["spearman"]["ci_low"], ag["spearman"]["ci_high"], ag["kendall"]["value"],
                                         ag["kendall"]["ci_low"], ag["kendall"]["ci_high"], ag["spearman"]["p_perm"],
                                         ag["pairwise_accuracy"], r["noise_ceiling"], r["name"] == an.best)])
    failed = [[r.job_id, r.arch_id, r.generator, r.objective, r.seed, r.status, r.error] for r in rk.failed]
    return {"ranking": (cols, ranking), "objectives": (comp_cols, comp),
            "failed": (["job_id", "arch_id", "generator", "objective", "seed", "status", "error"], failed)}


def to_wandb(an: Analysis, plots: list[tuple[str, Path, str]], out_dir: Path, mode: str = "offline",
             project: str | None = None, name: str | None = None) -> str:
    """Replay the runs' ``log.jsonl`` events into a new W&B run, then log the report's tables
    (``wandb.Table``) and plots (``wandb.Image``). Returns the W&B run's local folder.

    Job events become ``<objective>/<metric>`` points (prefixed ``<run>/`` when several runs are
    combined), as the live tracker logs them; summary events go to the run summary. W&B writes the
    run's files in a service process: they are complete after ``wandb.teardown()`` (called at
    process exit, and by ``main``)."""
    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    multi = len(an.runs) > 1
    project = project or (an.runs[0].config.get("run") or {}).get("wandb_project") or "unnas"
    config = {r.name: r.config for r in an.runs} if multi else an.runs[0].config
    run = wandb.init(project=project, name=name or "+".join(r.name for r in an.runs), dir=str(out_dir), mode=mode,
                     config=config, reinit="create_new", job_type="report")
    try:
        for r in an.runs:
            pre = f"{r.name}/" if multi else ""
            for ev in r.events:
                if ev.get("event") == "job":
                    flat = {f"{pre}{ev.get('objective')}/{k}": v for k, v in (ev.get("metrics") or {}).items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)}
                    if flat:
                        run.log(flat)
                elif ev.get("event") in ("summary", "run_start"):
                    for k, v in ev.items():
                        if k not in ("event", "time") and isinstance(v, (int, float, str)):
                            key = f"{pre}{k}" if ev["event"] == "summary" else f"{pre}run_start/{k}"
                            run.summary[key] = v
        for key, (cols, rows) in wandb_tables(an).items():
            run.log({f"report/{key}": wandb.Table(columns=cols, data=rows)})
        for key, path, caption in plots:
            run.log({f"report/{key}": wandb.Image(str(path), caption=caption)})
        if an.best:
            run.summary["best_objective"] = an.best
        for r in an.comparison:
            run.summary[f"{r['name']}/spearman"] = _clean(r["agreement"]["spearman"]["value"])
            run.summary[f"{r['name']}/kendall"] = _clean(r["agreement"]["kendall"]["value"])
        return str(Path(run.dir).parent)
    finally:
        run.finish()
