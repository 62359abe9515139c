"""The files a run folder is read by others through: strict JSON with a ``schema_version``,
``ranking.csv`` (one row per candidate) and ``provenance.json`` (what produced the run).

Strict JSON: non-finite floats are written as ``null`` (:func:`unnas.tracking.json_safe`), so every
JSON parser reads the files. ``SCHEMA_VERSION`` changes whenever a field changes meaning or goes away.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

SCHEMA_VERSION = 1
_ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
              "amx_bf16", "amx_int8", "asimd", "sve")


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):  # numpy arrays and scalars
        return _plain(v.tolist())
    return v


def dumps(obj: Any) -> str:
    """Indented strict JSON: NaN and infinities become ``null``; numpy values and paths plain ones."""
    from unnas.tracking import json_safe

    return json.dumps(json_safe(_plain(obj)), indent=2, allow_nan=False)


def versioned(obj: dict) -> dict:
    """``obj`` with ``schema_version`` first."""
    return {"schema_version": SCHEMA_VERSION, **{k: v for k, v in obj.items() if k != "schema_version"}}


def write_json(path: str | Path, obj: dict) -> Path:
    """Write ``obj`` with its ``schema_version`` as strict JSON, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(dumps(versioned(obj)) + "\n")
    os.replace(tmp, path)
    return path


def csv_text(rows: Iterable[dict]) -> str:
    """Rows as CSV, columns in order of first appearance; missing and non-finite values are empty."""
    rows = list(rows)
    cols = list(dict.fromkeys(c for r in rows for c in r))
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if _missing(r.get(c)) else _cell(r.get(c)) for c in cols])
    return out.getvalue()


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and not math.isfinite(v))


def _cell(v: Any) -> Any:
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(_plain(v), sort_keys=True, separators=(",", ":"))
    return _plain(v)


def ranking_rows(ranking) -> list[dict]:
    """One row per candidate of a :class:`~unnas.scores.Ranking`, best first: ``rank``, ``arch_id``,
    ``generator``, ``params``, ``flops``, every score column, ``supervised`` (and ``reference``), ``spec``."""
    rows = []
    for i, r in enumerate(ranking.table()):
        a = r["arch_id"]
        rows.append({"rank": i + 1, "arch_id": a, "generator": ranking.generators.get(a, ""),
                     **{k: v for k, v in r.items() if k != "arch_id"}, "spec": ranking.specs.get(a, "")})
    return rows


def write_ranking_csv(path: str | Path, ranking) -> Path:
    """``ranking.csv``: :func:`ranking_rows` as CSV (empty cells where a value is missing)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(csv_text(ranking_rows(ranking)))
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- provenance
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def isa_flags() -> list[str]:
    """The vector and matrix ISA extensions of this CPU that change numerics or speed (from ``/proc/cpuinfo``)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set()
    for line in text.splitlines():
        if line.lower().startswith(("flags", "features")):
            flags |= set(line.split(":", 1)[1].split())
    return [f for f in _ISA_FLAGS if f in flags]


def git_commit(start: str | Path | None = None) -> str | None:
    """The commit of the git checkout that holds ``start`` (default: the unnas source), or None."""
    where = Path(start) if start else Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "-C", str(where), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


def provenance(device: str = "", command: list[str] | None = None) -> dict:
    """What produced a result: versions, the git commit, the CPU and its ISA, the device and the command."""
    import unnas

    try:
        import torch

        torch_version, capability = torch.__version__, torch.backends.cpu.get_cpu_capability()
    except ImportError:
        torch_version, capability = None, None
    return {"unnas": unnas.__version__, "torch": torch_version, "python": platform.python_version(),
            "platform": platform.platform(), "git_commit": git_commit(), "cpu": cpu_model(),
            "cpu_capability": capability, "isa_flags": isa_flags(), "device": device,
            "command": shlex.join(sys.argv if command is None else command),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def write_provenance(run_dir: str | Path, device: str = "", command: list[str] | None = None) -> dict:
    """Write ``provenance.json`` in ``run_dir``: this invocation, and the earlier ones of a resumed run
    under ``earlier`` (oldest first)."""
    path = Path(run_dir) / "provenance.json"
    earlier: list = []
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            earlier = [*old.get("earlier", []), {k: v for k, v in old.items() if k not in ("earlier", "schema_version")}]
        except (ValueError, AttributeError):
            earlier = []
    block = provenance(device, command)
    write_json(path, {**block, "earlier": earlier[-20:]})
    return block
