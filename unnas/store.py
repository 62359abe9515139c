"""SQLite results store: one row per job, written in one transaction when the job ends.

WAL mode lets readers (reports) look while a run writes. A rerun reads the ``done`` rows and
skips those jobs. ``export_csv`` writes ``results.csv`` with one column per metric.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

STATUSES = ("done", "failed", "diverged", "timeout")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id      TEXT PRIMARY KEY,
    arch_id     TEXT NOT NULL,
    spec        TEXT NOT NULL,
    generator   TEXT NOT NULL,
    objective   TEXT NOT NULL,
    seed        INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('done', 'failed', 'diverged', 'timeout')),
    metrics     TEXT NOT NULL DEFAULT '{}',
    started_at  REAL,
    finished_at REAL,
    seconds     REAL,
    error       TEXT,
    host        TEXT
);
CREATE INDEX IF NOT EXISTS jobs_arch ON jobs (arch_id, objective);
"""


@dataclass
class JobRow:
    job_id: str
    arch_id: str
    spec: str
    generator: str
    objective: str
    seed: int
    status: str
    metrics: dict[str, Any] = field(default_factory=dict)
    started_at: float | None = None
    finished_at: float | None = None
    seconds: float | None = None
    error: str | None = None
    host: str | None = None


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.executescript(_SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def put(self, row: JobRow) -> None:
        """Insert or replace one job's row in a single transaction."""
        if row.status not in STATUSES:
            raise ValueError(f"status {row.status!r} not in {STATUSES}")
        row.host = row.host or socket.gethostname()
        row.finished_at = row.finished_at or time.time()
        values = (row.job_id, row.arch_id, row.spec, row.generator, row.objective, int(row.seed), row.status,
                  json.dumps(row.metrics, sort_keys=True, allow_nan=True), row.started_at, row.finished_at,
                  row.seconds, row.error, row.host)
        with self.conn:  # BEGIN ... COMMIT
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("INSERT OR REPLACE INTO jobs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", values)

    def rows(self, status: str | None = None) -> list[JobRow]:
        q = "SELECT * FROM jobs" + (" WHERE status = ?" if status else "") + " ORDER BY arch_id, objective, seed"
        cur = self.conn.execute(q, (status,) if status else ())
        out = []
        for r in cur.fetchall():
            out.append(JobRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9], r[10], r[11], r[12]))
        return out

    def statuses(self) -> dict[str, str]:
        return dict(self.conn.execute("SELECT job_id, status FROM jobs").fetchall())

    def done_ids(self) -> set[str]:
        return {j for j, s in self.statuses().items() if s == "done"}

    def export_csv(self, path: str | Path | None = None) -> Path:
        path = Path(path) if path else self.path.with_name("results.csv")
        rows = self.rows()
        keys: list[str] = sorted({k for r in rows for k in r.metrics})
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["job_id", "arch_id", "generator", "objective", "seed", "status", *keys,
                        "seconds", "error", "spec"])
            for r in rows:
                w.writerow([r.job_id, r.arch_id, r.generator, r.objective, r.seed, r.status,
                            *[r.metrics.get(k, "") for k in keys],
                            "" if r.seconds is None else f"{r.seconds:.2f}", r.error or "", r.spec])
        os.replace(tmp, path)
        return path


def summarize(rows: Iterable[JobRow]) -> dict[str, int]:
    out: dict[str, int] = {s: 0 for s in STATUSES}
    for r in rows:
        out[r.status] += 1
    return out
