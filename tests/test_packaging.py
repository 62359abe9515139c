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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(ROOT)], capture_output=True, text=True, cwd=out)
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("unnas-*.whl")
    return path


def test_the_wheel_has_one_top_level_import_name(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert _top_level_packages(names) == {"unnas"}
    # every package folder of the source tree is in the wheel, under its one name
    for folder, dotted in (("eval", "unnas/eval"), ("moco", "unnas/moco"), ("pretext", "unnas/pretext"), ("unnas", "unnas"),
                           ("configs", "unnas/configs")):
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.relative_to(ROOT / folder).as_posix()
            assert f"{dotted}/{rel}" in names, f"{folder}/{rel} is missing from the wheel"


SHADOWS = {"eval.py": "raise SystemExit('SHADOWED-eval')\n",
           "moco.py": "raise SystemExit('SHADOWED-moco')\n",
           "pretext.py": "raise SystemExit('SHADOWED-pretext')\n"}


MODULES = ["unnas.rank", "unnas.search", "unnas.sample", "unnas.longtail", "unnas.report", "unnas.findings"]


def test_commands_run_from_a_folder_with_modules_named_like_ours(tmp_path):
    """Every ``python -m unnas.X --help`` in one process (which imports every component module first)."""
    for name, text in SHADOWS.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    code = ("import runpy, sys\nimport unnas.registry as r\nr.load_all()\n"
            "for m in %r:\n"
            "    sys.argv = [m, '--help']\n"
            "    try:\n"
            "        runpy.run_module(m, run_name='__main__', alter_sys=True)\n"
            "    except SystemExit as e:\n"
            "        assert e.code in (0, None), (m, e.code)\n"
            "    print('DONE', m)\n") % (MODULES,)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line for line in proc.stdout.splitlines() if line.startswith("DONE")] == [f"DONE {m}" for m in MODULES]
    assert proc.stdout.lower().count("usage:") == len(MODULES)
    assert "SHADOWED" not in proc.stdout + proc.stderr


def _unnas_command() -> list[str]:
    """The installed ``unnas`` console script, else ``python -m unnas`` (same entry point)."""
    script = Path(sys.executable).with_name("unnas")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "unnas"]


@pytest.mark.parametrize("argv", [["rank", "--help"], ["search", "--help"], ["sample", "--help"],
                                  ["longtail", "--help"], ["report", "--help"], ["findings", "--help"],
                                  ["list", "proxies"], ["--version"]])
def test_unnas_subcommands_run_from_a_folder_with_modules_named_like_ours(tmp_path, argv):
    for name, text in SHADOWS.items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for cmd in {tuple(_unnas_command()), (sys.executable, "-m", "unnas")}:
        proc = subprocess.run([*cmd, *argv], capture_output=True, text=True, cwd=tmp_path, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "SHADOWED" not in proc.stdout + proc.stderr
        assert ("usage: unnas " + argv[0]) in proc.stdout if argv[-1] == "--help" else proc.stdout.strip()


def test_the_wheel_ships_the_configs_and_py_typed(wheel):
    zf = zipfile.ZipFile(wheel)
    names = zf.namelist()
    assert "unnas/py.typed" in names
    assert {f"unnas/configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")} <= set(names)
    (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "unnas = unnas.cli:main" in zf.read(entry).decode()
