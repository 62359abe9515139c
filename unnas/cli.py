"""Shared pieces of the command-line entry points."""

from __future__ import annotations

import argparse
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
