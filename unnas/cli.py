"""Shared pieces of the command-line entry points."""

from __future__ import annotations

import argparse
import re
import sys

_SUFFIX = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors are one line (``error: <message>``) with exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def parse_count(text: str) -> float:
    """``"300M"`` -> ``3e8``: a finite non-negative number with an optional k / M / G / T suffix
    (parameter and FLOP bounds)."""
    t = str(text).strip()
    scale = _SUFFIX.get(t[-1:], 1.0)
    try:
        value = float(t[:-1] if t[-1:] in _SUFFIX else t) * scale
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise ValueError(f"{text!r} is not a count (a non-negative number, optionally with k, M, G or T: 2M, 1.5G)")
    return value


def count(text: str) -> float:
    """:func:`parse_count` as an ``argparse`` type (its error becomes the one-line usage error)."""
    try:
        return parse_count(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_command(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_intermixed_args(argv)``, with the dotted config overrides that ``--params``
    swallowed (``--params k=4 train.epochs=1``) given back to the positional ``overrides``: a
    generator parameter's name never holds a dot, a config key always does."""
    args = parser.parse_intermixed_args(argv)
    params = getattr(args, "params", None) or []
    dotted = [p for p in params if "." in p.split("=", 1)[0]]
    if dotted:
        args.params = [p for p in params if p not in dotted]
        args.overrides = [*dotted, *getattr(args, "overrides", [])]
    return args


# ---------------------------------------------------------------- help text
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")  # :mod:`unnas.ranking` -> unnas.ranking
_LITERAL = re.compile(r"``([^`]+)``")  # ``--config`` -> --config


def plain(text: str | None) -> str | None:
    """``text`` without reStructuredText markup (roles and double-backtick literals)."""
    if not text:
        return text
    return _LITERAL.sub(r"\1", _ROLE.sub(lambda m: m.group(1).split(".")[-1] if m.group(0).startswith(":func:")
                                         else m.group(1), text))


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples kept as written, without markup."""

    def _expand_help(self, action: argparse.Action) -> str:
        return plain(super()._expand_help(action)) or ""

    def format_help(self) -> str:
        return plain(super().format_help()) or ""


def _shown(value) -> str:
    if value is None or value == "" or value == []:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def finish(p: argparse.ArgumentParser, *, defaults: dict | None = None,
           examples: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """Give every option of ``p`` its default in the help (``defaults``: dest -> the value a run uses
    when the option is not given, for options whose argparse default is None) and examples as epilog."""
    defaults = defaults or {}
    for action in p._actions:
        if action.help == argparse.SUPPRESS or not action.option_strings or isinstance(
                action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        text = action.help or ""
        if "default" in text:
            continue
        value = defaults.get(action.dest, action.default)
        if isinstance(action, argparse._StoreTrueAction):
            value = defaults.get(action.dest, False)
        action.help = f"{text} (default: {_shown(value)})".lstrip()
    p.formatter_class = HelpFormatter
    p.description = plain(p.description)
    if examples:
        p.epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    return p


# ---------------------------------------------------------------- old spellings
class Deprecated(argparse.Action):
    """An old option name: sets the new option's value and prints one ``warning:`` line naming it."""

    def __init__(self, option_strings, dest, new: str, const=None, nargs=None, **kwargs):
        self.new = new
        super().__init__(option_strings, dest, nargs=nargs, const=const, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        if self.nargs != 0:
            setattr(namespace, self.dest, values)
        elif getattr(namespace, self.dest, None) in (None, "disabled"):  # a flag never overrides a given value
            setattr(namespace, self.dest, self.const)


def deprecated(p: argparse.ArgumentParser, old: str, new: str, dest: str, **kwargs) -> None:
    """Accept ``old`` as a hidden spelling of ``new`` (same ``dest``)."""
    p.add_argument(old, dest=dest, action=Deprecated, new=new, help=argparse.SUPPRESS, default=argparse.SUPPRESS,
                   **kwargs)


# ---------------------------------------------------------------- the unnas command
# subcommand -> (module with parser(prog) and main(argv, prog), one-line summary)
COMMANDS = {
    "rank": ("unnas.rank", "rank generated networks by label-free scores and compare with the supervised ranking"),
    "search": ("unnas.search_cli", "search for good networks: a strategy over candidates, or a supernet"),
    "sample": ("unnas.sample", "draw a population and print its complexity"),
    "longtail": ("unnas.longtail", "decoupled classifier re-balancing on long-tailed data"),
    "report": ("unnas.report_cli", "plots, report.json and report.html of finished runs"),
    "findings": ("unnas.findings.cli", "reproduce a seed paper's headline finding: figure, numbers and verdict"),
    "list": ("unnas.cli", "list generators, objectives, proxies, scores, datasets, strategies, methods or configs"),
}


def _module(name: str):
    import importlib

    return importlib.import_module(COMMANDS[name][0])


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every subcommand's parser by name (cheap: imports no torch)."""
    return {name: _module(name).parser(prog=f"unnas {name}") for name in COMMANDS}


def parser(prog: str = "unnas list") -> argparse.ArgumentParser:
    """``unnas list KIND``."""
    from unnas.catalog import LIST_KINDS

    p = ArgumentParser(prog=prog, description="List the registered names of a kind, one per line with a description.")
    p.add_argument("kind", nargs="?", choices=LIST_KINDS, metavar="KIND",
                   help=f"one of {', '.join(LIST_KINDS)} (default: every kind)")
    return finish(p, examples=("unnas list proxies", "unnas list configs   # then: unnas rank --config fidelity"))


def list_main(argv: list[str] | None = None, prog: str = "unnas list") -> int:
    from unnas.catalog import LIST_KINDS, format_list

    a = parser(prog).parse_args(argv)
    kinds = [a.kind] if a.kind else list(LIST_KINDS)
    for i, kind in enumerate(kinds):
        if len(kinds) > 1:
            print(("\n" if i else "") + f"{kind}:")
        print(format_list(kind))
    return 0


def _top_parser() -> argparse.ArgumentParser:
    from unnas import __version__

    p = ArgumentParser(prog="unnas", formatter_class=HelpFormatter,
                       description="Rank candidate networks without labels, and measure how far the label-free "
                                   "ranking agrees with the supervised one.",
                       epilog="commands:\n" + "\n".join(f"  {n:<9} {d}" for n, (_, d) in COMMANDS.items())
                              + "\n\n'unnas COMMAND --help' shows a command's options and examples.")
    p.add_argument("--version", action="version", version=f"unnas {__version__}")
    p.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help="one of the commands below")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the command's options")
    return p


def main(argv: list[str] | None = None) -> int:
    """The ``unnas`` console command: ``unnas COMMAND [options]``."""
    a = _top_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if a.command == "list":
        return list_main(a.args)
    return _module(a.command).main(a.args, prog=f"unnas {a.command}")
