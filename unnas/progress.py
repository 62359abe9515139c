"""Progress for logs: without a terminal (nohup, CI, Slurm) a run prints a line per finished job with
done/total, the elapsed time and an ETA, and a heartbeat line at most every ``every`` seconds while
jobs run (a 20-minute job is never silent). In a terminal the bar shows the same ETA
(:func:`bar_columns`)."""

from __future__ import annotations

import threading
import time
from typing import Callable


def clock_text(seconds: float | None) -> str:
    """``3725`` -> ``"1:02:05"``; ``None`` -> ``"?"``."""
    if seconds is None:
        return "?"
    s = int(round(max(0.0, seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def bar_columns():
    """The terminal bar: description, bar, done/total, elapsed and remaining time."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn())


class LogProgress:
    """Done/total, elapsed and ETA lines for a log; :meth:`start` adds a heartbeat thread.

    The ETA assumes the remaining jobs take as long as the finished ones on average
    (``elapsed / done * (total - done)``); it is unknown (``?``) until a job finishes.
    """

    def __init__(self, total: int, emit: Callable[[str], None], *, every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic):
        self.total, self.emit, self.every, self.clock = total, emit, every, clock
        self.done = 0
        self.t0 = self.last = clock()
        self.running: dict[str, str] = {}  # job -> its latest step text
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def eta(self) -> float | None:
        if self.done == 0:
            return None
        return (self.clock() - self.t0) / self.done * max(0, self.total - self.done)

    def status(self) -> str:
        return (f"{self.done}/{self.total} jobs done, {clock_text(self.clock() - self.t0)} elapsed, "
                f"ETA {clock_text(self.eta())}")

    def step(self, job: str, step: int, total: int) -> None:
        with self._lock:
            self.running[job] = f"{job} step {step}/{total}"

    def finished(self, job: str = "") -> None:
        """One job finished: print its progress line."""
        with self._lock:
            self.running.pop(job, None)
            self.done += 1
            self.last = self.clock()
        self.emit(f"progress: {self.status()}")

    def heartbeat(self) -> str | None:
        """The heartbeat line when ``every`` seconds passed since the last line, else None."""
        with self._lock:
            if self.clock() - self.last < self.every:
                return None
            self.last = self.clock()
            busy = "; ".join(list(self.running.values())[:4]) or "no job reported a step yet"
        return f"heartbeat: {self.status()}; running: {busy}"

    def start(self) -> "LogProgress":
        def loop() -> None:
            while not self._stop.wait(min(1.0, self.every)):
                line = self.heartbeat()
                if line:
                    self.emit(line)

        self._thread = threading.Thread(target=loop, name="unnas-heartbeat", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
