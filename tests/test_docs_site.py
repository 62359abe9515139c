"""The documentation site's build-time code (docs/hooks/unnas_docs.py): the command reference
generated from the parsers, and docstrings cleaned for mkdocstrings. Needs the docs extra."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("griffe")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def hooks():
    spec = importlib.util.spec_from_file_location("unnas_docs_hooks", ROOT / "docs" / "hooks" / "unnas_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_sphinx_roles_become_code_spans(hooks):
    text = "Uses :func:`unnas.spec.build` and :class:`~unnas.spec.ArchSpec` (:mod:`unnas.eval`); ``x`` stays."
    assert hooks.plain(text) == "Uses `unnas.spec.build` and `ArchSpec` (`unnas.eval`); ``x`` stays."


def test_every_option_of_every_command_is_in_the_reference(hooks):
    page = hooks.reference_markdown()
    parsers = hooks.command_parsers()
    assert {"rank", "search", "sample", "longtail", "report"} <= set(parsers)
    for parser in parsers.values():
        assert f"`{parser.prog}`" in page
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}`" in page, (parser.prog, option)


def test_a_section_shows_default_help_and_required(hooks):
    p = argparse.ArgumentParser(prog="tool", description="Does :func:`x.y` things.")
    p.add_argument("--width", type=int, default=16, help="channels | width (default %(default)s)")
    p.add_argument("--name", required=True, help="run name")
    p.add_argument("--quiet", action="store_true", help="no output")
    p.add_argument("--old-name", dest="name", help=argparse.SUPPRESS)
    p.epilog = "examples:\n  tool --name a"
    md = hooks.command_markdown(p)
    assert md.startswith("## `tool`\n\nDoes `x.y` things.\n")
    assert "| `--width` `WIDTH` | `16` | channels \\| width (default 16) |" in md
    assert "| `--name` `NAME` |  | run name (required) |" in md
    assert "| `--quiet` |  | no output |" in md
    assert "--old-name" not in md
    assert md.endswith("```\nexamples:\n  tool --name a\n```\n")


def test_uses_the_unnas_command_parsers_when_the_cli_has_them(hooks, monkeypatch):
    import unnas.cli

    only = argparse.ArgumentParser(prog="unnas only")
    monkeypatch.setattr(unnas.cli, "command_parsers", lambda: {"only": only}, raising=False)
    assert hooks.command_parsers() == {"only": only}


def test_mapped_folders_are_found_as_unnas_subpackages(hooks):
    mapped = hooks.mapped_packages()
    # an editable install maps eval/, moco/, pretext/ and configs/ from the source tree; a regular
    # one puts them inside the unnas folder, where griffe finds them without help
    if mapped:
        assert set(mapped) == {"eval", "moco", "pretext", "configs"}
        assert all((folder / "__init__.py").is_file() for folder in mapped.values())


def test_the_api_of_a_mapped_package_loads_with_its_docstrings(hooks):
    import griffe

    loader = griffe.GriffeLoader(extensions=griffe.load_extensions(hooks.UnnasDocstrings))
    unnas = loader.load("unnas")
    correlation = unnas["eval.correlation"]
    assert correlation.path == "unnas.eval.correlation"
    assert ":func:" not in (correlation.docstring.value if correlation.docstring else "")


def test_subcommands_get_their_own_sections(hooks):
    p = argparse.ArgumentParser(prog="unnas")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("rank", description="Rank.").add_argument("--epochs", type=int, default=4, help="epochs")
    md = hooks.command_markdown(p)
    assert "### `unnas rank`\n\nRank.\n" in md
    assert "| `--epochs` `EPOCHS` | `4` | epochs |" in md
    assert "`command`" not in md  # the subcommand selector is not an option row
