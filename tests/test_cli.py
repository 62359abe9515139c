"""The ``unnas`` command: subcommands, help text, listing, old spellings, and cheap refusals."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from unnas import catalog
from unnas.cli import command_parsers, main, plain

SUBCOMMANDS = ("rank", "search", "sample", "longtail", "report", "findings", "list")


def test_every_subcommand_has_a_parser_named_unnas_x():
    parsers = command_parsers()
    assert sorted(parsers) == sorted(SUBCOMMANDS)
    assert all(p.prog == f"unnas {n}" for n, p in parsers.items())


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_help_states_every_default_without_markup(name):
    p = command_parsers()[name]
    for action in p._actions:
        if action.help == argparse.SUPPRESS or not action.option_strings or action.dest == "help":
            continue
        assert "default" in action.help, f"unnas {name} {action.option_strings[-1]}: {action.help!r}"
    text = p.format_help()
    assert ":mod:" not in text and ":func:" not in text and "``" not in text
    assert "examples:\n  unnas " + name in text
    assert "default: run." not in text and "default: model." not in text  # real values, not config keys


def test_plain_strips_roles_and_literals():
    assert plain("see :mod:`unnas.ranking` and ``--config``") == "see unnas.ranking and --config"
    assert plain(":func:`unnas.search_run.run_search`") == "run_search"


def test_search_help_lists_no_option_that_every_search_refuses():
    text = command_parsers()["search"].format_help()
    for flag in ("--budget", "--rungs", "--eta", "--samples", "--master-seed"):
        assert flag not in text


@pytest.mark.parametrize("name, flag", [("rank", "--seed"), ("search", "--seed"), ("sample", "--seed"),
                                        ("longtail", "--seed"), ("rank", "--wandb"), ("longtail", "--wandb"),
                                        ("report", "--wandb"), ("rank", "--generator"), ("search", "--generator"),
                                        ("sample", "--generator"), ("longtail", "--generator"), ("rank", "--num-archs"),
                                        ("search", "--num-archs"), ("sample", "--num-archs"),
                                        ("longtail", "--num-archs")])
def test_one_name_per_concept(name, flag):
    p = command_parsers()[name]
    dest = {"--seed": "master_seed", "--wandb": "wandb", "--generator": {"longtail": "arch"}.get(name, "generator"),
            "--num-archs": "num_archs"}[flag]
    if name == "sample" and flag == "--seed":
        dest = "seed"
    (action,) = [a for a in p._actions if flag in a.option_strings]
    assert action.dest == dest
    if flag == "--num-archs":
        assert "-n" in action.option_strings


@pytest.mark.parametrize("name, old, new, dest, value", [
    ("rank", ["--master-seed", "3"], "--seed", "master_seed", 3),
    ("search", ["--samples", "5"], "--num-archs", "num_archs", 5),
    ("longtail", ["--arch", "nb201"], "--generator", "arch", "nb201"),
    ("longtail", ["--master-seed", "4"], "--seed", "master_seed", 4),
    ("report", ["r", "--seed", "2"], "--bootstrap-seed", "bootstrap_seed", 2),
    ("report", ["r", "--wandb-mode", "offline"], "--wandb", "wandb", "offline"),
])
def test_old_spellings_work_with_a_deprecation_line(name, old, new, dest, value, capsys):
    a = command_parsers()[name].parse_args(old)
    assert getattr(a, dest) == value
    err = capsys.readouterr().err
    assert err == f"warning: {old[-2]} is deprecated; use {new}\n"


def test_to_wandb_flag_keeps_its_meaning(monkeypatch, capsys):
    from unnas.report_cli import parser

    monkeypatch.setenv("WANDB_MODE", "offline")
    assert parser().parse_args(["r", "--to-wandb"]).wandb == "offline"
    assert parser().parse_args(["r", "--wandb-mode", "online", "--to-wandb"]).wandb == "online"
    assert parser().parse_args(["r"]).wandb == "disabled"


@pytest.mark.parametrize("kind", [k for k in catalog.KINDS])
def test_list_names_exactly_the_registered_components(kind):
    import unnas.registry as registry

    if kind == "methods":
        import unnas.search  # noqa: F401 - registers the supernet methods
    reg = getattr(registry, catalog.KINDS[kind][1])
    # the product's own components (other tests of the same process register toy ones)
    own = [n for n in reg.names() if str(getattr(reg.get(n), "__module__", "unnas")).startswith("unnas")]
    assert sorted(catalog.entries(kind)) == own
    assert all(d and "\n" not in d for d in catalog.entries(kind).values())


def test_list_prints_one_name_per_line_with_a_description(capsys):
    assert main(["list", "proxies"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split()[0] for ln in lines] == sorted(catalog.PROXIES)
    assert all(len(ln.split(None, 1)) == 2 for ln in lines)


def test_list_configs_and_a_config_by_name(capsys):
    from unnas import config

    assert main(["list", "configs"]) == 0
    names = [ln.split()[0] for ln in capsys.readouterr().out.splitlines()]
    assert {"demo", "fidelity"} <= set(names)
    assert config.load("fidelity").run.proxies == "swap"  # --config fidelity: the shipped file by name


def test_unknown_config_name_is_one_line(tmp_path):
    from unnas import config
    from unnas.errors import UserError

    with pytest.raises(UserError, match="--config.*fidelity"):
        config.load(str(tmp_path / "nofile"))


def _fresh(code: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env)


@pytest.mark.parametrize("argv, code", [(["--help"], 0), (["--version"], 0), (["list"], 0), (["rank", "--help"], 0),
                                        (["rank", "--bogus"], 2), (["search", "--epochs", "x"], 2),
                                        (["frobnicate"], 2), (["list", "nothing"], 2)])
def test_help_version_list_and_bad_options_import_no_torch(argv, code, tmp_path):
    proc = _fresh("import sys; from unnas.cli import main\n"
                  "try:\n    rc = main(%r)\nexcept SystemExit as e:\n    rc = e.code\n"
                  "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', rc)" % (argv,), tmp_path)
    assert proc.stdout.split()[-2:] == ["NO-TORCH", str(code)], proc.stderr[-2000:]
    if code == 2:
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")


def test_version_matches_the_package(capsys):
    import unnas

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"unnas {unnas.__version__}"


def test_python_dash_m_unnas(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "unnas", "list", "datasets"], capture_output=True, text=True,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0 and "digits" in proc.stdout


def test_config_summary_is_the_first_clause_without_long_asides():
    assert catalog.summary("A ranking with no training: the SWAP-Score (16 images). More.") == \
        "A ranking with no training"
    assert catalog.summary("Runs (see a: b) well. Then") == "Runs (see a: b) well"
    long = "Decoupled re-balancing (Kang et al. 2020) on CIFAR-10-LT, ratio 100 (Cao et al. 2019: n_i = 4500 * " \
           "0.01^(i/9) images after a balanced 500-per-class split). Stage 1: ResNet-32"
    assert catalog.summary(long, limit=80) == "Decoupled re-balancing (Kang et al. 2020) on CIFAR-10-LT, ratio 100"
    assert catalog.entries("configs")["fidelity"] == "A label-free ranking with no training at all"


def test_longtail_seed_is_the_population_seed_and_says_so(capsys):
    from unnas.longtail import parser, seed_note

    a = parser().parse_args(["--seed", "3", "--train-seed", "5"])
    assert (a.master_seed, a.seed) == (3, 5)
    seed_note(["--seed", "3"])
    assert capsys.readouterr().err.startswith("note: --seed is the population seed")
    seed_note(["--train-seed", "3"])
    assert capsys.readouterr().err == ""
