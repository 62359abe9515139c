"""Build-time pieces of the documentation site.

* An MkDocs hook (``hooks:`` in mkdocs.yml): ``commands.md`` gets, after its own text, one section
  per command with its usage line and a table of every option, its default and its help text, read
  from the argument parsers themselves, so the page cannot drift from the code.
* A griffe extension (mkdocstrings ``extensions:``): Sphinx roles in docstrings
  (``:func:`name```, ``:class:`~pkg.Name```) become code spans, which Markdown renders cleanly, and
  the folders that packaging maps into ``unnas`` (``eval/`` as ``unnas.eval``, ...) are attached to
  the ``unnas`` package when an editable install leaves them outside its folder.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
from pathlib import Path

import griffe

# :func:`x`, :py:class:`~a.B`, :mod:`a.b` -> `x`, `B`, `a.b` (a leading ~ keeps the last name only).
_ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|obj|exc|const|ref):`(~?)([^`]+)`")

# The commands and the modules whose parser() builds them, until unnas.cli.command_parsers exists.
_PARSER_MODULES = {
    "rank": "unnas.rank",
    "search": "unnas.search.__main__",
    "sample": "unnas.sample",
    "longtail": "unnas.longtail",
    "report": "unnas.report",
}


def plain(text: str) -> str:
    """Sphinx roles as Markdown code spans: ``:func:`~a.b``` -> ```b```."""
    return _ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)


def mapped_packages(root: Path = Path(__file__).resolve().parents[2]) -> dict[str, Path]:
    """``{"eval": <root>/eval, ...}``: top-level folders of the source tree that import as ``unnas.<name>``
    without being inside ``unnas/`` (pyproject's package-dir mapping, as an editable install sees it)."""
    out = {}
    for folder in sorted(p for p in root.iterdir() if (p / "__init__.py").is_file() and p.name != "unnas"):
        spec = importlib.util.find_spec(f"unnas.{folder.name}")
        if spec and any(Path(loc).resolve() == folder for loc in spec.submodule_search_locations or ()):
            out[folder.name] = folder
    return out


class UnnasDocstrings(griffe.Extension):
    """Sphinx roles as code spans in every docstring; the mapped folders as members of ``unnas``."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        if pkg.name != "unnas":
            return
        for name, folder in mapped_packages().items():
            if name not in pkg.members:
                pkg.set_member(name, loader.load(folder))

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every command's parser by subcommand name: ``unnas.cli.command_parsers()`` when the ``unnas``
    command provides it, else each ``python -m unnas.X`` module's ``parser()``."""
    cli = importlib.import_module("unnas.cli")
    if hasattr(cli, "command_parsers"):
        return cli.command_parsers()
    return {name: importlib.import_module(module).parser() for name, module in _PARSER_MODULES.items()}


def _cell(text: str) -> str:
    return " ".join(plain(text).split()).replace("|", "\\|")


def _default(action: argparse.Action) -> str:
    if action.default in (None, argparse.SUPPRESS, [], "") or isinstance(action, (
            argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction)):
        return ""
    return f"`{action.default}`"


def _option(action: argparse.Action) -> str:
    names = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}`"
    if action.option_strings and action.nargs != 0:
        metavar = action.metavar or ("{" + ",".join(map(str, action.choices)) + "}" if action.choices
                                     else action.dest.upper())
        names += f" `{metavar}`"
    return names


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = parser._get_formatter()._expand_help(action) if action.help else ""
    if action.required and action.option_strings:
        text += " (required)"
    return _cell(text)


def command_markdown(parser: argparse.ArgumentParser, level: int = 2) -> str:
    """One command's section: description, usage, and a table of its options and arguments."""
    lines = [f"{'#' * level} `{parser.prog}`", ""]
    if parser.description:
        lines += [plain(parser.description.strip()), ""]
    usage = " ".join(parser.format_usage().split())
    lines += ["```", usage.removeprefix("usage: "), "```", "",
              "| option | default | what |", "|---|---|---|"]
    subcommands = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue  # -h, and hidden options (old spellings kept as aliases)
        if isinstance(action, argparse._SubParsersAction):
            subcommands += list(action.choices.values())
            continue
        lines.append(f"| {_option(action)} | {_default(action)} | {_help(parser, action)} |")
    lines.append("")
    if parser.epilog:
        lines += ["```", parser.epilog.strip("\n"), "```", ""]
    for subparser in subcommands:
        lines.append(command_markdown(subparser, level + 1))
    return "\n".join(lines)


def reference_markdown() -> str:
    return "\n".join(command_markdown(p) for p in command_parsers().values())


def on_page_markdown(markdown: str, page, config, files) -> str:
    """MkDocs event: append the generated reference to ``commands.md``."""
    if page.file.src_uri == "commands.md":
        return markdown.rstrip("\n") + "\n\n" + reference_markdown()
    return markdown
