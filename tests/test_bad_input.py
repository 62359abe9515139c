"""Every command refuses bad input the same way: exit status 2, one line on stderr that names the
option, the bad value and what is allowed, no traceback, nothing written or changed under the runs
folder (nor in the working folder). The commands' ``main(argv)`` run in-process; a few cases also
run as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# (command, argv, option named, bad value shown, words saying what is allowed)
RANK = [
    (["--num-archs", "0"], "--num-archs", "0", "allowed: an integer >= 1"),
    (["--num-archs", "abc"], "--num-archs", "abc", "invalid int value"),
    (["--seeds", "0"], "--seeds", "0", "allowed: an integer >= 1"),
    (["--epochs", "-1"], "--epochs", "-1", "allowed: an integer >= 0"),
    (["--batch-size", "0"], "--batch-size", "0", "allowed: an integer > 0"),
    (["--lr", "0"], "--lr", "0", "allowed: a positive number"),
    (["--lr", "fast"], "--lr", "fast", "invalid float value"),
    (["--data", "nope"], "--data", "nope", "allowed: "),
    (["--generator", "nope"], "generator", "nope", "allowed: "),
    (["--pretext", "nope"], "--pretext", "nope", "allowed: "),
    (["--score", "linear"], "--score", "linear", "allowed: default, pretext, alignment"),
    (["--probes", "foo"], "eval.probes", "foo", "allowed: knn, linear"),
    (["--proxies", "nope"], "proxy", "nope", "allowed: "),
    (["--ensemble", "rotation"], "--ensemble", "rotation", "allowed: two or more"),
    (["--ensemble", "rotation,nope"], "--ensemble", "nope", "allowed: rotation"),
    (["--budget", "xx"], "--budget", "xx", "choose from"),
    (["--rungs", "1,3"], "--rungs", "1,3", "allowed: rungs only with --budget sh"),
    (["--budget", "sh", "--rungs", "a,b"], "--rungs", "a,b", "allowed: comma-separated integers"),
    (["--budget", "sh", "--steps", "3"], "--steps", "3", "allowed: 0 with --budget sh"),
    (["--params", "k=4", "train.epoch=1"], "train.epoch", "train.epoch", "allowed: epochs"),
    (["--params", "novalue"], "--params", "novalue", "allowed: K=V"),
    (["--params", "bogus=1"], "parameter", "bogus", "allowed: "),
    (["--executor", "bogus"], "--executor", "bogus", "allowed: "),
    (["--executor", "ray"], "--executor", "ray", "allowed: local, pool, auto"),
    (["--workers", "-1"], "--workers", "-1", "allowed: an integer >= 1"),
    (["--wandb", "bogus"], "--wandb", "bogus", "choose from"),
    (["--device", "bogus"], "--device", "bogus", "allowed: "),
    (["--name", "../x"], "--name", "../x", "allowed: letters, digits"),
    (["--config", "missing.yaml"], "--config", "missing.yaml", "allowed: an existing YAML file"),
    (["--config", "{bad}"], "--config", "bad.yaml", "not valid YAML"),
    (["--config", "{list}"], "--config", "list.yaml", "allowed: a mapping of sections"),
    (["train.epoch=3"], "train.epoch", "train.epoch", "allowed: epochs"),
    (["train.epochs=many"], "train.epochs", "many", "allowed: a value of type Integer"),
    (["foo"], "override", "foo", "allowed: key=value"),
    (["--min-params", "2M", "--max-params", "1M"], "--min-params", "2e+06", "allowed: at most --max-params"),
    (["--min-params", "abc"], "--min-params", "abc", "a non-negative number"),
    (["--generator", "timm:resnet999"], "model", "resnet999", "allowed: a timm model name"),
    (["--generator", "timm:resnet18"], "--num-archs", "8", "at most 1"),
    (["--reference", "missing.csv"], "reference", "missing.csv", "allowed: "),
    (["--plugins", "no_such_module_xyz"], "--plugins", "no_such_module_xyz", "allowed: importable module names"),
    (["--pretext", "none", "--proxies", "snip", "proxy.loss=moco"], "proxy.loss", "moco", "allowed: "),
    (["--ray-address", "bad address"], "--ray-address", "bad address", "allowed: local, auto"),
]
SEARCH = [
    ([], "--strategy", "--strategy", "--method"),
    (["--strategy", "bogus"], "strategy", "bogus", "allowed: "),
    (["--strategy", "random", "--num-archs", "0"], "--num-archs", "0", "allowed: a positive number"),
    (["--strategy", "random", "--generator", "macro", "--num-archs", "0"], "--num-archs", "0", "allowed: "),
]
SAMPLE = [
    (["--generator", "randwire-ws", "-n", "0"], "--num-archs", "0", "allowed: a positive integer"),
    (["--generator", "randwire-ws", "-n", "1", "--out", "{blocked}/x.csv"], "--out", "x.csv", "allowed: a writable"),
    (["--generator", "timm:resnet999"], "model", "resnet999", "allowed: a timm model name"),
    (["--generator", "timm:resnet18"], "--num-archs", "8", "at most 1"),
    (["--generator", "macro", "--max-params", "10", "--max-draws", "5"], "--max-params", "10", "allowed: a bound"),
    (["--generator", "randwire-ws", "--in-channels", "0"], "--in-channels", "0", "allowed: a positive integer"),
    (["--generator", "randwire-ws", "--params", "foo"], "--params", "foo", "allowed: K=V"),
    (["--generator", "randwire-ws", "--min-params", "2M", "--max-params", "1M"], "--min-params", "2e+06",
     "allowed: at most --max-params"),
]
LONGTAIL = [
    (["--data", "nope"], "--data", "nope", "allowed: "),
    (["--sampler", "bogus"], "sampler", "bogus", "allowed: "),
    (["--config", "missing.yaml"], "--config", "missing.yaml", "allowed: an existing YAML file"),
]
REPORT = [
    (["{runs}/corrupt"], "RUN_DIR", "store.sqlite", "allowed: a results store"),
    (["{runs}/empty"], "RUN_DIR", "empty", "allowed: a run folder holding store.sqlite"),
    (["{runs}/corrupt", "--n-boot", "0"], "--n-boot", "0", "allowed: an integer >= 1"),
]
COMMANDS = {"rank": ("unnas.rank", RANK), "search": ("unnas.search.__main__", SEARCH),
            "sample": ("unnas.sample", SAMPLE), "longtail": ("unnas.longtail", LONGTAIL),
            "report": ("unnas.report", REPORT)}
CASES = [pytest.param(mod, argv, *rest, id=f"{cmd}:{' '.join(argv)}")
         for cmd, (mod, cases) in COMMANDS.items() for argv, *rest in cases]


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A working folder holding bad config files and a runs folder with a finished-looking run, a
    run folder with a corrupt store, an empty folder and a file where a folder is expected."""
    runs = tmp_path / "runs"
    (runs / "old").mkdir(parents=True)
    (runs / "old" / "config.yaml").write_text("run:\n  num_archs: 2\n")
    (runs / "corrupt").mkdir()
    (runs / "corrupt" / "store.sqlite").write_bytes(b"SQLite format 3\x00 not really")
    (runs / "empty").mkdir()
    (runs / "blocked").write_text("a file, not a folder")
    (tmp_path / "bad.yaml").write_text("run: [unclosed\n")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else None
            for p in root.rglob("*")}


def _argv(cmd_module: str, argv: list[str], root: Path) -> list[str]:
    fill = {"{runs}": str(root / "runs"), "{blocked}": str(root / "runs" / "blocked"), "{bad}": "bad.yaml",
            "{list}": "list.yaml"}
    out = []
    for a in argv:
        for k, v in fill.items():
            a = a.replace(k, v)
        out.append(a)
    if cmd_module in ("unnas.rank", "unnas.search.__main__", "unnas.longtail"):
        out += ["--runs-dir", str(root / "runs")]
    return out


@pytest.mark.parametrize("module,argv,option,value,allowed", CASES)
def test_bad_input_is_refused_with_one_line(place, capsys, module, argv, option, value, allowed):
    import importlib

    main = importlib.import_module(module).main
    before = _snapshot(place)
    try:
        rc = main(_argv(module, argv, place))
    except SystemExit as e:  # argparse's usage errors
        rc = e.code
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "Traceback" not in err, err
    assert option in err and value in err and allowed in err, err
    assert _snapshot(place) == before, "something was written"


@pytest.mark.parametrize("argv", [["-m", "unnas.report", "runs/corrupt"]])
def test_real_processes_print_one_line_and_no_traceback(place, argv):
    before = _snapshot(place)
    p = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert p.returncode == 2 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr, p.stderr
    assert _snapshot(place) == before
