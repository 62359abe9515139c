"""The installed distribution provides one import name, ``unnas``; the repository's top-level folders
``eval/``, ``moco/`` and ``pretext/`` install as ``unnas.eval``, ``unnas.moco`` and ``unnas.pretext``."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _top_level_packages(names: list[str]) -> set[str]:
    return {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}


def test_the_wheel_has_one_top_level_import_name(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (wheel,) = tmp_path.glob("unnas-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert _top_level_packages(names) == {"unnas"}
    # every package folder of the source tree is in the wheel, under its one name
    for folder, dotted in (("eval", "unnas/eval"), ("moco", "unnas/moco"), ("pretext", "unnas/pretext"), ("unnas", "unnas")):
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.relative_to(ROOT / folder).as_posix()
            assert f"{dotted}/{rel}" in names, f"{folder}/{rel} is missing from the wheel"


SHADOWS = {"eval.py": "raise SystemExit('SHADOWED-eval')\n",
           "moco.py": "raise SystemExit('SHADOWED-moco')\n",
           "pretext.py": "raise SystemExit('SHADOWED-pretext')\n"}


@pytest.mark.parametrize("module", ["unnas.rank", "unnas.search", "unnas.sample", "unnas.longtail", "unnas.report"])
def test_commands_run_from_a_folder_with_modules_named_like_ours(tmp_path, module):
    for name, text in SHADOWS.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("import runpy, sys; sys.argv = [%r, '--help']; "
            "import unnas.registry as r; r.load_all(); runpy.run_module(%r, run_name='__main__')") % (module, module)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage" in proc.stdout.lower()
    assert "SHADOWED" not in proc.stdout + proc.stderr
