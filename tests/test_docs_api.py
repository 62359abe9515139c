"""The Python API example of docs/api.md (README.md's is run by tests/test_docs.py) runs as written,
from an empty folder, and the run folder it makes has the documented outputs: strict JSON with a
schema version, ranking.csv with one row per candidate, provenance.json."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def first_python_block(text: str) -> str | None:
    m = re.search(r"```python\n(.*?)```", text, re.S)
    return m.group(1) if m else None


def section(text: str, heading: str) -> str | None:
    m = re.search(rf"^{re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.S | re.M)
    return m.group(1) if m else None


def run_example(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def strict(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_api_example_runs_and_writes_the_documented_outputs(tmp_path):
    code = first_python_block((ROOT / "docs" / "api.md").read_text())
    assert code and "import unnas" in code
    run_example(code, tmp_path)
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    ranking = strict((run_dir / "ranking.json").read_text())
    assert ranking["schema_version"] == 1 and ranking["provenance"]["command"]
    assert len(ranking["table"]) == 6
    assert strict((run_dir / "report.json").read_text())["schema_version"] == 1
    prov = strict((run_dir / "provenance.json").read_text())
    assert prov["schema_version"] == 1 and prov["torch"] and prov["cpu"] and prov["device"] == "cpu"
    with open(run_dir / "ranking.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["arch_id"] for r in rows] == [r["arch_id"] for r in ranking["table"]]
    assert [r["rank"] for r in rows] == ["1", "2", "3", "4", "5", "6"] and all(r["spec"].startswith("{") for r in rows)
    assert float(rows[0]["synflow"]) >= float(rows[-1]["synflow"])  # best first by the primary column
    assert all(r["supervised"] == "" for r in rows)  # no supervised jobs: an empty cell, not NaN
