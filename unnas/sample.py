"""``unnas sample`` (and ``python -m unnas.sample``): draw a population and print its complexity.

Prints a table of arch_id, seed, the sampled parameters, parameter count and FLOPs (one
``--in-channels x --image-size`` image; multiply-adds count 2) and the generator's measures
(C and L for graph generators), and writes the same rows as CSV with ``--out``. Parameter
values (``--params k=v``, ``--vary k=v1,v2``) are read as JSON when they parse, else as text.
Bad input prints one line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from unnas.cli import ArgumentParser, count, finish
from unnas.errors import UserError

EXAMPLES = (
    "unnas sample --generator randwire-ws -n 8 --seed 0 --params nodes=16 --out ws.csv",
    "unnas sample --generator nds-darts -n 20 --params width=16 depth=20 --max-flops 3e8",
    "unnas sample --generator nds-amoeba -n 50 --vary width=16,24,32 depth=4,8,12,16,20",
    "unnas sample --generator timm:resnet18 -n 1 --params stem=small",
)


def parser(prog: str = "python -m unnas.sample") -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--generator", required=True, help="generator name, or timm:MODEL (see unnas list generators; "
                                                      "default: none, required)")
    p.add_argument("-n", "--num-archs", type=int, default=8, help="population size: candidates to draw")
    p.add_argument("--seed", type=int, default=0, help="master seed of the population")
    p.add_argument("--params", nargs="*", default=[], metavar="K=V", help="fixed generator parameters")
    p.add_argument("--vary", nargs="*", default=[], metavar="K=V1,V2", help="parameters drawn from a list")
    for bound in ("min", "max"):
        for what in ("params", "flops"):
            p.add_argument(f"--{bound}-{what}", type=count, metavar="N",
                           help=f"keep candidates with {'at least' if bound == 'min' else 'at most'} N "
                                f"{'parameters' if what == 'params' else 'FLOPs per image'} (e.g. 2M, 1.5G)")
    p.add_argument("--in-channels", type=int, default=3, help="input channels of the measured image")
    p.add_argument("--image-size", type=int, default=32, help="side of the measured image in pixels")
    p.add_argument("--frames", type=int, default=0,
                   help="clip length for video generators such as s3d (0 = the generator's default)")
    p.add_argument("--max-draws", type=int, default=0, help="give up after this many draws (0 = automatic)")
    p.add_argument("--out", type=Path, help="write the table as CSV")
    return finish(p, examples=EXAMPLES)


def rows_for(specs, in_channels: int, image_size: int, frames: int = 0) -> list[dict[str, Any]]:
    from unnas.generators.complexity import complexity
    from unnas.spec import get_generator

    rows = []
    for spec in specs:
        gen = get_generator(spec.generator)
        c = complexity(spec, in_channels, image_size, frames)
        row = {"arch_id": spec.arch_id, "generator": spec.generator, "seed": spec.seed,
               "params_json": json.dumps(spec.params, sort_keys=True, separators=(",", ":")),
               "sampled": _short(spec.params, gen.defaults),
               "params": c["params"], "flops": c["flops"]}
        row.update({k: float(v) for k, v in gen.measures(gen.resolve(spec.params), spec.seed).items()})
        rows.append(row)
    return rows


def _short(params: dict[str, Any], defaults: dict[str, Any]) -> str:
    """The parameters that differ from the generator's defaults, floats to 3 decimals."""
    items = []
    for k, v in params.items():
        if defaults.get(k) != v:
            items.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(items) or "(defaults)"


def _range(lo: float | None, hi: float | None):
    return None if lo is None and hi is None else (lo, hi)


def run(argv: Sequence[str] | None = None, prog: str = "python -m unnas.sample") -> list[dict[str, Any]]:
    from unnas.population import parse_params, parse_vary, sample_population

    a = parser(prog).parse_args(argv)
    for key in ("in_channels", "image_size"):
        if getattr(a, key) < 1:
            raise UserError(f"--{key.replace('_', '-')}", getattr(a, key), "a positive integer")
    if a.num_archs < 1:
        raise UserError("--num-archs", a.num_archs, "a positive integer")
    if a.frames < 0:
        raise UserError("--frames", a.frames, "0 (the generator's default) or a positive integer")
    specs = sample_population(a.generator, a.num_archs, a.seed, parse_params(a.params),
                              in_channels=a.in_channels, image_size=a.image_size,
                              params_range=_range(a.min_params, a.max_params),
                              flops_range=_range(a.min_flops, a.max_flops),
                              vary=parse_vary(a.vary), max_draws=a.max_draws or None, frames=a.frames)
    rows = rows_for(specs, a.in_channels, a.image_size, a.frames)
    if a.out:
        _write_csv(rows, a.out)
    _print(rows, a)
    return rows


def _print(rows: list[dict[str, Any]], a: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    extra = [k for k in (rows[0] if rows else {}) if k not in
             ("arch_id", "generator", "seed", "params_json", "sampled", "params", "flops")]
    t = Table(title=f"{a.generator}: {len(rows)} candidates (master seed {a.seed}, "
                    f"{f'{a.frames}x' if a.frames else ''}{a.in_channels}x{a.image_size}x{a.image_size} input)")
    for col, just in (("arch_id", "left"), ("seed", "right"), ("parameters (non-default)", "left"),
                      ("params", "right"), ("FLOPs", "right"), *((k, "right") for k in extra)):
        t.add_column(col, justify=just, overflow="fold")
    for r in rows:
        t.add_row(r["arch_id"], str(r["seed"]), r["sampled"], f"{r['params']:,}", f"{r['flops']:,}",
                  *(f"{r[k]:.3f}" for k in extra))
    Console(width=None if sys.stdout.isatty() else 120).print(t)


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    fields = list(rows[0]) if rows else ["arch_id", "generator", "seed", "params_json", "sampled", "params", "flops"]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
    except OSError as e:
        raise UserError("--out", str(path), "a writable file path", message=f"cannot write ({e.strerror})") from None


def main(argv: Sequence[str] | None = None, prog: str = "python -m unnas.sample") -> int:
    try:
        run(argv, prog)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
