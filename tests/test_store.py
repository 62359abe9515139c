import csv
import sqlite3

import pytest

from unnas.store import JobRow, Store, summarize


def row(job_id, status="done", **metrics):
    return JobRow(job_id, "arch" + job_id, '{"generator":"g"}', "g", "rotation", 0, status, metrics)


def test_put_rows_and_done_ids(tmp_path):
    with Store(tmp_path / "s.sqlite") as s:
        s.put(row("a", score=0.5))
        s.put(row("b", "failed"))
        s.put(row("c", "diverged"))
        assert s.done_ids() == {"a"}
        assert summarize(s.rows()) == {"done": 1, "failed": 1, "diverged": 1, "timeout": 0}
        s.put(row("b", score=0.7))  # a retried job replaces its row
        assert s.done_ids() == {"a", "b"} and len(s.rows()) == 3
        assert {r.job_id: r.metrics for r in s.rows("done")}["b"] == {"score": 0.7}


def test_wal_and_reopen(tmp_path):
    p = tmp_path / "s.sqlite"
    Store(p).put(row("a", score=1.0))
    assert sqlite3.connect(p).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert Store(p).rows()[0].metrics == {"score": 1.0}


def test_bad_status_rejected(tmp_path):
    with pytest.raises(ValueError):
        Store(tmp_path / "s.sqlite").put(row("a", "running"))


def test_export_csv_has_one_column_per_metric(tmp_path):
    s = Store(tmp_path / "s.sqlite")
    s.put(row("a", score=0.5, params=10))
    s.put(row("b", "failed"))
    path = s.export_csv()
    rows = list(csv.DictReader(open(path)))
    assert path.name == "results.csv" and {"score", "params"} <= set(rows[0])
    assert [r["status"] for r in rows] == ["done", "failed"] and rows[0]["score"] == "0.5"
