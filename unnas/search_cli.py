"""``unnas search`` (and ``python -m unnas.search``): a search for good networks, either a strategy over candidates that run
as jobs (``--strategy random|evolution|lanas``) or one supernet search (``--method darts|dmasking``)
whose training signal is an objective's loss.

Argument parsing only; the work is in :func:`unnas.search_run.run_search` (strategies) and
:func:`unnas.search.run.run_search` (supernets). Importing this module is cheap (no torch).
"""

from __future__ import annotations

import argparse
import sys

from unnas.cli import deprecated, finish, parse_command
from unnas.errors import UserError

EXAMPLES = (
    "unnas search --strategy lanas --generator macro --pretext none --proxies swap --score swap -n 100 "
    "--reference nas-bench-macro-cifar10.json --data cifar10 --data-root DIR",
    "unnas search --strategy evolution --generator macro --time-budget 600 --clock cpu",
    "unnas search --method darts --generator macro --pretext rotation --data cifar10 --data-root DIR",
    "unnas search --method dmasking --generator fbnet-macro --pretext rotation --epochs 10",
)
# unnas.rank options that no search uses (a strategy is the search's budget)
_NEVER = ("budget", "rungs", "eta", "score")

# unnas.rank options that have no meaning for one supernet search
_NOT_FOR_SUPERNETS = ("num_archs", "vary", "seeds", "min_params", "max_params", "min_flops", "max_flops", "search_score",
                      "executor", "workers", "steps", "time_budget", "clock", "supervised", "retry_failed", "join",
                      "ray_address", "plugins")


def parser(prog: str = "python -m unnas.search") -> argparse.ArgumentParser:
    """``unnas rank``'s options (same names, same config keys) but the budget ones, plus the search's own;
    ``--score`` names the column that scores a candidate (``search.score``)."""
    from unnas.rank import config_defaults, options_parser

    p = options_parser(prog, exclude=_NEVER)
    p.description = __doc__.split("\n\n")[0]
    p.add_argument("--strategy", help="strategy search: random | evolution | lanas")
    p.add_argument("--method", help="supernet search: darts | dmasking; not with --strategy")
    p.add_argument("--score", dest="search_score", metavar="COLUMN",
                   help="strategies: the column that scores a candidate: an objective (its label-free score), a proxy, "
                        "an ensemble, supervised (with --supervised), or reference (the --reference table as an "
                        "oracle: nothing is trained); default: the first objective")
    deprecated(p, "--samples", "--num-archs", "num_archs", type=int)
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="strategies: stop once the evaluated candidates' jobs took this many seconds (0: no limit)")
    p.add_argument("--clock", choices=["wall", "cpu"],
                   help="strategies: what --time-budget counts: each job's wall seconds or CPU seconds")
    for action in p._actions:
        if action.help == argparse.SUPPRESS:
            continue
        if action.dest == "num_archs" and action.option_strings:
            action.help = "strategies: candidates to evaluate (<strategy>.samples; default: the strategy's own)"
        if action.dest == "master_seed" and action.option_strings:
            action.help = ("search seed: the strategy's draws, or a supernet's data split, initialisation, orders "
                           "and noise")
    defaults = {**config_defaults(), "time_budget": 0, "clock": "wall", "strategy": "none", "method": "none",
                "epochs": "4 (a supernet search: 10)", "lr": "0.05 (a supernet search: 0.025)"}
    return finish(p, defaults=defaults, examples=EXAMPLES)


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
    base.get("run", {}).pop("num_archs", None)  # a strategy's sample size is <strategy>.samples (main sets it)
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
    if a.num_archs is not None and a.num_archs < 1:
        raise UserError("--num-archs", a.num_archs, "a positive number of candidates")


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


def main(argv: list[str] | None = None, prog: str = "python -m unnas.search") -> int:
    args = parse_command(parser(prog), argv)
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

        if args.num_archs is not None:
            base.setdefault(strategy, {})["samples"] = args.num_archs
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
