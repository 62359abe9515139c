"""The seed papers' headline findings, each reproduced by one command over the product's own
commands (``unnas.rank``, ``unnas.search``, ``unnas.longtail``): ``python -m unnas.findings list``,
``python -m unnas.findings NAME [--budget test|quick|full] [--seed S]``.

Each finding is a module of this package registering one :class:`~unnas.findings.base.Finding`
in :data:`FINDINGS`; :func:`run_finding` runs it and writes its folder: ``figure.png``,
``result.json`` (one JSON line: the numbers, the verdict, the commands, the CPU seconds) and
``verdict.txt``.
"""

from __future__ import annotations

import importlib
import json
import math
import resource
import time
from pathlib import Path

from unnas.registry import Registry

FINDINGS = Registry("finding")
MODULES = ("randwire", "relational", "nds", "resnext", "s3d", "fbnet", "moco", "pretexts", "existing")


def load() -> Registry:
    for m in MODULES:
        importlib.import_module(f"{__name__}.{m}")
    return FINDINGS


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _finite(x) -> bool:
    """Whether every number inside ``x`` (nested dicts and lists) is finite."""
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    if isinstance(x, (list, tuple)):
        return all(_finite(v) for v in x)
    return not isinstance(x, float) or math.isfinite(x)


def run_finding(name: str, budget: str = "quick", seed: int = 0, out: Path | None = None, data_root: str = "",
                reference: str = "") -> dict:
    """Run (or resume) one finding; returns the record written to ``<out>/result.json``."""
    from unnas.findings.base import Context, check_budget

    finding = load().get(name)()
    check_budget(budget)
    out = Path(out or Path("runs") / "findings" / f"{name}-{budget}-s{seed}")
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out, budget, seed, data_root=data_root, reference=reference)
    t0, c0 = time.time(), _cpu()
    numbers = finding.run(ctx, finding.budgets[budget])
    verdict = finding.verdict(numbers)
    finding.figure(numbers, out / "figure.png")
    record = {"finding": name, "title": finding.title, "paper": finding.paper, "claim": finding.claim,
              "budget": budget, "seed": seed, "verdict": verdict.outcome, "reason": verdict.reason,
              "numbers": numbers, "finite": _finite(numbers), "wall_seconds": round(time.time() - t0, 1),
              "cpu_seconds": round(_cpu() - c0, 1), "commands": ctx.commands, "folder": str(out)}
    (out / "result.json").write_text(json.dumps(record, sort_keys=True, default=float) + "\n")
    (out / "verdict.txt").write_text(f"{name} ({budget} budget, seed {seed}): {verdict.outcome}: {verdict.reason}\n")
    return record


from unnas.findings.cli import main, parser  # noqa: E402  (the command: ``unnas findings``)

__all__ = ["FINDINGS", "load", "main", "parser", "run_finding"]
