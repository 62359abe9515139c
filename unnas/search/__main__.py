"""``python -m unnas.search``: a search for good networks, either a strategy over candidates that run
as jobs (``--strategy random|evolution|lanas``, :func:`unnas.search_run.run_search`) or one supernet
search (``--method darts|dmasking``, :func:`unnas.search.run.run_search`) whose training signal is an
objective's loss. Argument parsing only.

    python -m unnas.search --strategy lanas --generator macro --pretext none --proxies swap --score swap \\
        --samples 100 --reference nas-bench-macro-cifar10.json --data cifar10 --data-root DIR
    python -m unnas.search --strategy evolution --generator macro --time-budget 600 --clock cpu
    python -m unnas.search --method darts --generator macro --pretext rotation --data cifar10 --data-root DIR
    python -m unnas.search --method dmasking --generator fbnet-macro --pretext rotation --epochs 10
"""

from __future__ import annotations

import argparse
import sys

from unnas.cli import parse_command
from unnas.errors import UserError

# unnas.rank options that have no meaning for one supernet search
_NOT_FOR_SUPERNETS = ("num_archs", "seeds", "min_params", "max_params", "min_flops", "max_flops", "search_score",
                      "executor", "workers", "steps", "samples", "time_budget", "clock", "budget", "rungs", "eta",
                      "supervised", "retry_failed", "join", "ray_address", "plugins")
# unnas.rank options that a strategy search replaces with its own
_NOT_FOR_STRATEGIES = {"num_archs": "--samples", "budget": "--strategy", "rungs": "--strategy", "eta": "--strategy"}


def parser() -> argparse.ArgumentParser:
    """``unnas.rank``'s options (same names, same config keys) plus the search's own; ``--score``
    names the column that scores a candidate (``search.score``)."""
    from unnas.rank import parser as rank_parser

    p = rank_parser(conflict_handler="resolve")  # --score: the search's column replaces unnas.rank's eval.score
    p.prog = "python -m unnas.search"
    p.description = __doc__.split("\n\n")[0]
    p.add_argument("--strategy", help="strategy search: random | evolution | lanas (default: search.strategy)")
    p.add_argument("--method", help="supernet search: darts | dmasking (default: search.method); not with --strategy")
    p.add_argument("--score", dest="search_score", metavar="COLUMN",
                   help="strategies: the column that scores a candidate: an objective (its label-free score), a proxy, "
                        "an ensemble, supervised (with --supervised), or reference (the --reference table as an "
                        "oracle: nothing is trained); default: the first objective")
    p.add_argument("--samples", type=int, metavar="N", help="strategies: candidates to evaluate (<strategy>.samples)")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="strategies: stop once the evaluated candidates' jobs took this many seconds (search.time_budget)")
    p.add_argument("--clock", choices=["wall", "cpu"],
                   help="strategies: what --time-budget counts: each job's wall seconds (default) or CPU seconds")
    p.add_argument("--seed", type=int, dest="master_seed", metavar="SEED",
                   help="search seed (same as --master-seed): the strategy's draws, or a supernet's data split, "
                        "initialisation, orders and noise")
    return p


def _given(a: argparse.Namespace, key: str) -> bool:
    return getattr(a, key) != getattr(parser().parse_args([]), key)


def _flag(a: argparse.Namespace, key: str) -> str:
    if key == "supervised":
        return "--supervised" if a.supervised else "--no-supervised"
    return f"--{key.replace('_', '-')}".replace("--search-score", "--score")


def options_to_config(a: argparse.Namespace) -> dict:
    """Map the options onto config sections (only the options that were given)."""
    from unnas.rank import options_to_config as rank_options

    base = rank_options(argparse.Namespace(**{**vars(a), "score": None}))
    search = {k: v for k, v in (("method", a.method), ("strategy", a.strategy), ("score", a.search_score),
                                ("time_budget", a.time_budget), ("clock", a.clock)) if v is not None}
    if search:
        base["search"] = search
    return base


def check_options(a: argparse.Namespace, supernet: bool) -> None:
    """Refuse options the chosen kind of search does not use (one line each)."""
    if supernet:
        for key in _NOT_FOR_SUPERNETS:
            if _given(a, key):
                v = getattr(a, key)
                raise UserError(_flag(a, key), None if isinstance(v, bool) else v, "no value with --method",
                                message="not used by a supernet search (--method)")
        return
    for key, instead in _NOT_FOR_STRATEGIES.items():
        if _given(a, key):
            raise UserError(_flag(a, key), getattr(a, key), f"{instead} instead",
                            message=f"not used by a strategy search (use {instead})")
    if a.samples is not None and a.samples < 1:
        raise UserError("--samples", a.samples, "a positive number of candidates")


def search_kind(a: argparse.Namespace, base: dict) -> tuple[str, str]:
    """``(method, strategy)`` after the options, the YAML file and the overrides (exactly one set)."""
    from unnas import config as config_mod
    from unnas.search import run

    node = config_mod.merge_sources(run.schema(), a.config, a.overrides, base)
    method, strategy = node.search.method, node.search.strategy
    if method and strategy:
        raise UserError("--method", method, None, message=f"{method} is a supernet search and --strategy {strategy} a "
                                                          f"strategy search: give one of them, not both")
    if not method and not strategy:
        from unnas.registry import SEARCH_METHODS, STRATEGIES

        allowed = [n for n in STRATEGIES.names() if n not in ("fixed", "sh")]
        raise UserError("--strategy", None, None, message=f"say which search: --strategy {' | '.join(allowed)} or "
                                                          f"--method {' | '.join(SEARCH_METHODS.names())}")
    return method, strategy


def main(argv: list[str] | None = None) -> int:
    args = parse_command(parser(), argv)
    try:
        from unnas.runner import import_plugins

        plugins = tuple(m.strip() for m in args.plugins.split(",") if m.strip())
        import_plugins(plugins)  # before the config: plugin objectives add config sections
        base = options_to_config(args)
        method, strategy = search_kind(args, base)
        check_options(args, supernet=bool(method))
        if method:
            from unnas.search import run

            return run.run_search(run.load(args.config, args.overrides, base=base), quiet=args.quiet)
        from unnas import config
        from unnas.search_run import run_search

        if args.samples is not None:
            base.setdefault(strategy, {})["samples"] = args.samples
        cfg = config.load(args.config, args.overrides, base=base)
        return run_search(cfg, quiet=args.quiet, retry_failed=args.retry_failed, join=args.join,
                          ray_address=args.ray_address, plugins=plugins)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
