"""The pieces every finding shares: its description, the context that runs the product's own
commands in this process (and so resumes from their stores), and the verdict rules.

A finding is a script over ``unnas.rank``, ``unnas.search`` and ``unnas.longtail``: it never
trains anything itself. Each command writes its usual run folder under ``<out>/runs/<name>``;
rerunning a finding reruns the same commands, which skip every job already in their stores.
"""

from __future__ import annotations

import abc
import contextlib
import csv
import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from unnas.errors import UserError

BUDGETS = ("test", "quick", "full")
REPRODUCED, PARTLY, NOT_AT_SCALE = "reproduced", "partly", "not at this scale"
NUMERIC = ("knn_acc_uses_labels", "cpu_seconds", "epochs", "flops", "objective_acc", "objective_loss", "params", "score", "steps",
           "train_acc", "train_loss", "seconds")


@dataclass(frozen=True)
class Verdict:
    """``reproduced``, ``partly`` or ``not at this scale``, with the measured reason."""

    outcome: str
    reason: str


class Finding(abc.ABC):
    """One headline claim of a paper. Subclasses set the class attributes and implement
    :meth:`run` (numbers from the product's commands), :meth:`verdict` (a comparison of those
    numbers) and :meth:`figure` (one PNG)."""

    name = ""
    title = ""
    paper = ""
    claim = ""
    budgets: Mapping[str, Mapping[str, Any]] = {}

    @abc.abstractmethod
    def run(self, ctx: "Context", b: Mapping[str, Any]) -> dict:
        """The finding's numbers, from the product's commands at budget ``b``."""

    @abc.abstractmethod
    def verdict(self, numbers: Mapping[str, Any]) -> Verdict:
        """reproduced / partly / not at this scale, from a comparison of ``numbers``."""

    @abc.abstractmethod
    def figure(self, numbers: Mapping[str, Any], path: Path) -> None:
        """Draw the finding's PNG at ``path``."""


INTERRUPTED = 130  # the exit status of a command stopped by Ctrl-C (128 + SIGINT)


@dataclass
class Context:
    """Where a finding's commands write, and how they are called (in this process, quietly,
    one job at a time; each command's terminal output goes to ``<out>/logs/<name>.log``)."""

    out: Path
    budget: str
    seed: int
    reference: str = ""  # NAS-Bench-Macro's published table ("" = the copy beside the project)
    data_root: str = ""  # the CIFAR-10 ImageFolder tree of the full budgets ("" = the default cache folder)
    commands: list[str] = field(default_factory=list)

    @property
    def runs_dir(self) -> Path:
        return self.out / "runs"

    def _call(self, module: str, main: Callable[[list[str]], int], name: str, argv: Sequence[str]) -> Path:
        argv = [str(a) for a in argv]
        self.commands.append(f"python -m {module} " + " ".join(_quote(a) for a in argv))
        log = self.out / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
            rc = main(argv)
        if rc == INTERRUPTED:  # Ctrl-C reached the command: its finished jobs are stored; stop the finding too
            raise KeyboardInterrupt
        if rc != 0:
            raise RuntimeError(f"{module} {name} ended with status {rc}; its output is in {log}")
        return self.runs_dir / name

    def rank(self, name: str, argv: Sequence[str], probes: str = "none") -> list[dict]:
        """``unnas.rank`` with ``argv`` (plus the run folder and one in-process job at a time); the
        finished rows of its ``results.csv``."""
        from unnas import rank

        run = self._call("unnas.rank", rank.main, name, [*argv, "--runs-dir", self.runs_dir, "--name", name,
                                                         "--executor", "local", "--quiet", "--probes", probes])
        return read_rows(run / "results.csv")

    def ranking(self, name: str) -> dict:
        """The ``ranking.json`` of the ``unnas.rank`` run ``name`` (agreement of every column)."""
        return json.loads((self.runs_dir / name / "ranking.json").read_text())

    def search(self, name: str, argv: Sequence[str]) -> dict:
        """``unnas.search`` with ``argv``; its ``result.json`` (supernets) or ``search.json`` (strategies)."""
        from unnas.search import __main__ as search_cli

        run = self._call("unnas.search", search_cli.main, name, [*argv, "--runs-dir", self.runs_dir, "--name", name,
                                                             "--quiet"])
        path = run / "result.json" if (run / "result.json").exists() else run / "search.json"
        return json.loads(path.read_text())

    def longtail(self, name: str, argv: Sequence[str]) -> Path:
        """``unnas.longtail`` with ``argv``; its run folder."""
        from unnas import longtail

        return self._call("unnas.longtail", longtail.main, name,
                          [*argv, "--runs-dir", self.runs_dir, "--name", name, "--quiet"])


def _quote(a: str) -> str:
    return f"'{a}'" if any(c in a for c in " []{}*") else a


def read_rows(path: Path) -> list[dict]:
    """The ``done`` rows of a run's ``results.csv``, numbers as floats and the spec parsed."""
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r.get("status") != "done":
                continue
            for k in NUMERIC:
                if r.get(k) not in (None, ""):
                    r[k] = float(r[k])
            r["spec"] = json.loads(r["spec"])
            rows.append(r)
    return rows


def accuracies(rows: Sequence[Mapping], objective: str = "supervised") -> list[float]:
    """The held-out accuracy (the objective's own score) of every row of ``objective``."""
    return [float(r["score"]) for r in rows if r["objective"] == objective]


def mean_std(values: Sequence[float]) -> dict:
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()) if v.size else math.nan, "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "n": int(v.size)}


def stderr(stats: Mapping[str, float]) -> float:
    return stats["std"] / math.sqrt(stats["n"]) if stats["n"] else math.inf


def separated(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    """Whether mean ``a`` exceeds mean ``b`` by more than two standard errors of the difference (never with
    fewer than two values on a side: one value has no measured spread)."""
    if a["n"] < 2 or b["n"] < 2:
        return False
    return a["mean"] - b["mean"] > 2 * math.hypot(stderr(a), stderr(b))


def check_budget(budget: str) -> str:
    if budget not in BUDGETS:
        raise UserError("--budget", budget, BUDGETS)
    return budget


class PeakMemory:
    """Peak resident memory (bytes) above the level at entry, sampled every few milliseconds from
    ``/proc/self/statm`` while the block runs (``nan`` where that file does not exist). Freed memory
    is handed back before the baseline is read, so consecutive blocks in one process compare."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.peak = math.nan

    @staticmethod
    def rss() -> float:
        try:
            import os

            return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return math.nan

    @staticmethod
    def trim() -> None:
        """Give freed heap memory back to the system (glibc), so that the baseline is what is in use."""
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass

    def __enter__(self) -> "PeakMemory":
        import gc

        gc.collect()
        self.trim()
        self.base = self.rss()
        self._top = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._top = max(self._top, self.rss())
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self._top, self.rss()) - self.base
