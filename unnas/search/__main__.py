"""``python -m unnas.search``: a supernet search (DARTS or DMaskingNAS) whose training signal is
an objective's loss; it writes the derived network (an ArchSpec every command accepts) into a run
folder. Argument parsing only; the work is in :mod:`unnas.search.run`.

    python -m unnas.search --method darts --generator macro --pretext rotation --data cifar10 --data-root DIR
    python -m unnas.search --method dmasking --generator fbnet-macro --pretext rotation --epochs 10
    python -m unnas.search --method darts --generator nds-darts --params width=16 depth=8 darts.second_order=true
"""

from __future__ import annotations

import argparse
import sys

from unnas.errors import UserError

# unnas.rank options that have no meaning for one supernet search
_NOT_FOR_SUPERNETS = ("num_archs", "seeds", "min_params", "max_params", "min_flops", "max_flops", "score",
                      "executor", "workers", "steps", "supervised")
_FLAGS_NOT_FOR_SUPERNETS = ("retry_failed", "join")


def parser() -> argparse.ArgumentParser:
    """``unnas.rank``'s options (same names, same config keys) plus ``--method`` and ``--seed``."""
    from unnas.rank import parser as rank_parser

    p = rank_parser()
    p.prog = "python -m unnas.search"
    p.description = __doc__.split("\n\n")[0]
    p.add_argument("--method", help="supernet search method: darts | dmasking (default: search.method)")
    p.add_argument("--seed", type=int, dest="master_seed", metavar="SEED",
                   help="search seed: data split, initialisation, orders, noise (same as --master-seed)")
    return p


def options_to_config(a: argparse.Namespace) -> dict:
    """Map the options onto config sections; refuse rank options a supernet search does not use."""
    from unnas.rank import options_to_config as rank_options

    for key in _NOT_FOR_SUPERNETS:
        if getattr(a, key) is not None:
            raise UserError(f"--{key.replace('_', '-')}", getattr(a, key), None,
                            message="not used by a supernet search (--method)")
    for key in _FLAGS_NOT_FOR_SUPERNETS:
        if getattr(a, key):
            raise UserError(f"--{key.replace('_', '-')}", None, None, message="not used by a supernet search (--method)")
    if a.ray_address or a.plugins:
        key = "--ray-address" if a.ray_address else "--plugins"
        raise UserError(key, a.ray_address or a.plugins, None, message="not used by a supernet search (--method)")
    base = rank_options(a)
    if a.method is not None:
        base["search"] = {"method": a.method}
    return base


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)
    try:
        from unnas.search import run

        sc = run.load(args.config, args.overrides, base=options_to_config(args))
        return run.run_search(sc, quiet=args.quiet)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last finished epoch", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
