"""``python -m unnas.findings`` (``unnas findings``): reproduce one of the seed papers' headline findings with the
product's own commands, and write its figure, numbers and verdict."""

from __future__ import annotations

import argparse
import sys

from unnas.cli import ArgumentParser, finish
from unnas.errors import UserError

EXAMPLES = ("unnas findings list", "unnas findings randwire --budget quick",
            "unnas findings lanas-decoupling --budget full --reference nas-bench-macro-cifar10.json")


def parser(prog: str = "python -m unnas.findings") -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("name", metavar="NAME|list", help="a finding's name, or list to name them all")
    p.add_argument("--budget", default="quick",
                   help="test (seconds, for the test suite), quick (about 2 CPU minutes) or full (up to 1 CPU hour)")
    p.add_argument("--seed", type=int, default=0, help="master seed of every command the finding runs")
    p.add_argument("--out", help="the finding's folder (default: runs/findings/NAME-BUDGET-sSEED)")
    p.add_argument("--data-root", default="", help="CIFAR-10 as an ImageFolder tree (train/, test/) for the full "
                                                   "budgets (default: ~/.cache/unnas/cifar10-jpeg/cifar10)")
    p.add_argument("--reference", default="", help="NAS-Bench-Macro's published CIFAR-10 table for lanas-decoupling "
                                                   "(default: ../shared/data/nas-bench-macro-cifar10.json beside the project)")
    return finish(p, examples=EXAMPLES)


def main(argv: list[str] | None = None, prog: str = "python -m unnas.findings") -> int:
    args = parser(prog).parse_args(argv)
    try:
        from unnas.findings import load, run_finding

        registry = load()
        if args.name == "list":
            for name in registry.names():
                f = registry.get(name)
                print(f"{name:<17} {f.title}")
            return 0
        registry.get(args.name)  # an unknown name: one line listing the known ones
        rec = run_finding(args.name, args.budget, args.seed, args.out, args.data_root, args.reference)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the finished runs are stored; rerun the same command to resume", file=sys.stderr)
        return 130
    print(f"{rec['finding']}: {rec['verdict']}: {rec['reason']}")
    print(f"{rec['cpu_seconds']} CPU s; figure, numbers and verdict in {rec['folder']}")
    return 0
