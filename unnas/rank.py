"""``unnas rank`` (and ``python -m unnas.rank``): rank generated networks by label-free scores and
compare the ranking with the supervised one. Argument parsing only; the work is in :mod:`unnas.ranking`."""

from __future__ import annotations

import argparse
import sys
from typing import Collection

from unnas.cli import ArgumentParser, count, deprecated, finish, parse_command
from unnas.errors import UserError

EXAMPLES = (
    "unnas rank                                  # 8 RandWire-WS networks on the embedded digits data",
    "unnas rank --pretext none --proxies synflow,naswot --generator nb201 -n 50",
    "unnas rank --config fidelity --generator macro --reference nas-bench-macro-cifar10.json",
)
# option destination -> the config key it sets
CONFIG_KEYS = {
    "pretext": "run.pretext", "num_archs": "run.num_archs", "seeds": "run.seeds", "master_seed": "run.master_seed",
    "name": "run.name", "runs_dir": "run.runs_dir", "device": "run.device", "wandb": "run.wandb",
    "executor": "run.executor", "workers": "run.workers", "threads_per_worker": "run.threads_per_worker",
    "proxies": "run.proxies", "supervised": "run.supervised", "generator": "model.generator",
    "min_params": "model.min_params", "max_params": "model.max_params", "min_flops": "model.min_flops",
    "max_flops": "model.max_flops", "data": "data.name", "data_root": "data.root", "epochs": "train.epochs",
    "steps": "train.steps", "batch_size": "train.batch_size", "lr": "train.lr", "score": "eval.score",
    "reference": "reference.path", "budget": "budget.kind", "eta": "budget.eta", "probes": "eval.probes",
}


def config_defaults(config_cls=None) -> dict:
    """Option destination -> the built-in default of the config key it sets."""
    from unnas.config import Config

    cfg = (config_cls or Config)()
    out = {}
    for dest, key in CONFIG_KEYS.items():
        sec, name = key.split(".")
        out[dest] = getattr(getattr(cfg, sec), name)
    return out


def parser(prog: str = "python -m unnas.rank", exclude: Collection[str] = ()) -> argparse.ArgumentParser:
    """The options (``exclude``: destinations a command built on them leaves out), with their defaults
    and examples in the help."""
    p = options_parser(prog, exclude)
    return finish(p, defaults=config_defaults(), examples=EXAMPLES)


def options_parser(prog: str, exclude: Collection[str] = ()) -> argparse.ArgumentParser:
    """The bare options, without help defaults (a command built on them adds its own and finishes it)."""
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    add = p.add_argument

    def opt(*names: str, **kw):
        dest = kw.get("dest") or names[-1].lstrip("-").replace("-", "_")
        if dest not in exclude:
            add(*names, **kw)

    add("overrides", nargs="*", metavar="KEY=VALUE",
        help="dotted config overrides, e.g. train.epochs=3 moco.queue_size=1024")
    opt("--pretext", help="label-free objective(s), comma-separated, or none (see unnas list objectives)")
    opt("--generator", help="network generator, or timm:MODEL (see unnas list generators)")
    opt("--params", nargs="*", default=[], metavar="K=V",
        help="fixed generator parameters (YAML values), e.g. nodes=16 k=4")
    opt("--vary", nargs="*", default=[], metavar="K=V1,V2",
        help="generator parameters drawn uniformly from a list per candidate, e.g. width=8,12 depth=4,5")
    opt("-n", "--num-archs", type=int, help="population size: candidates sampled from the generator")
    for bound in ("min", "max"):
        for what in ("params", "flops"):
            opt(f"--{bound}-{what}", type=count, metavar="N",
                help=f"keep candidates with {'at least' if bound == 'min' else 'at most'} N backbone "
                     f"{'parameters' if what == 'params' else 'FLOPs per image'} (e.g. 2M, 300M, 1.5G)")
    opt("--seeds", type=int, help="training seeds per candidate")
    opt("--seed", type=int, dest="master_seed", help="seed of the population sample")
    if "master_seed" not in exclude:
        deprecated(p, "--master-seed", "--seed", "master_seed", type=int)
    opt("--data", help="dataset name (digits, fake, mnist, fashion-mnist, cifar10, cifar100, "
                       "imagefolder; NAME-lt for the long-tailed variant)")
    opt("--data-root", help="dataset folder")
    opt("--epochs", type=int, help="training epochs per job")
    opt("--steps", type=int, help="training budget in steps (overrides --epochs)")
    opt("--batch-size", type=int, help="training batch size")
    opt("--lr", type=float, help="learning rate (SGD, cosine schedule)")
    opt("--score",
        help="the column that ranks candidates: default (the first objective's measured best label-free "
             "score: rankme for rotation and moco, its own held-out score otherwise and with --budget sh), "
             "pretext (each objective's own label-free held-out score), a label-free score of the trained "
             "network (rankme, alpha_req, alignment, uniformity, heldout_loss, sotl_e) or a probe that reads "
             "labels (knn, linear; see --probes)")
    opt("--probes", help="probes computed beside the label-free score, which read labels: knn (default), "
                         "knn,linear, or none")
    opt("--proxies", metavar="NAME[,NAME]",
        help="zero-cost proxies, each a job without training (e.g. synflow,naswot,jacob_cov); "
             "with --pretext none nothing is trained")
    opt("--ensemble", action="append", default=[], metavar="SCORE,SCORE[,...]",
        help="combine label-free scores (objectives, proxies, params, flops) by mean rank; repeatable")
    opt("--reference", metavar="FILE",
        help="published table (CSV: structure,accuracy columns; or JSON as NAS-Bench-Macro's) to compare "
             "every ranking with; the supervised jobs then run only with --supervised")
    opt("--budget", choices=["fixed", "sh"], help="fixed (every candidate --epochs) or sh (successive "
                                                  "halving over rungs of epochs)")
    opt("--rungs", metavar="E,E,...", help="successive-halving rungs in epochs, e.g. 1,3,9 "
                                           "(default: --epochs / eta^k)")
    opt("--eta", type=int, help="successive halving: keep the best 1/eta at each rung (default 3)")
    if "supervised" not in exclude:
        sup = p.add_mutually_exclusive_group()
        sup.add_argument("--supervised", dest="supervised", action="store_true", default=None,
                         help="also train every candidate with labels (default: on without --reference)")
        sup.add_argument("--no-supervised", dest="supervised", action="store_false",
                         help="skip the supervised jobs (default: on with --reference)")
    opt("--name", help="run folder name under --runs-dir (default: derived from the options)")
    opt("--runs-dir", help="where run folders are created (default: runs)")
    opt("--config", help="YAML config file (sections data, model, train, eval, run, <objective>)")
    opt("--device", help="auto | cpu | cuda | cuda:N")
    opt("--wandb", choices=["disabled", "offline", "online"], metavar="MODE",
        help="Weights & Biases logging: disabled, offline or online")
    opt("--executor", help="auto (the default: every core, worker processes x threads chosen from the "
                           "core count and the jobs) | local (one job at a time in this process) | "
                           "pool (worker processes on this machine) | ray (Ray tasks; needs unnas[ray])")
    opt("--workers", type=int, help="parallel jobs for auto / pool / ray (default: cores // threads per job)")
    opt("--threads-per-worker", type=int,
        help="intra-op threads of every job on every executor (default: auto spreads the cores over "
             "the jobs, the other executors use 1 in deterministic mode; CPU results depend on it, "
             "so keep it fixed to compare executors)")
    opt("--ray-address", default="",
        help="Ray cluster: auto | HOST:PORT | ray://HOST:PORT (default: start a local Ray instance)")
    opt("--retry-failed", action="store_true",
        help="run failed, diverged and timed-out jobs again (resuming from their checkpoints)")
    opt("--join", action="store_true",
        help="share the run folder with other runners started with --join; each runs jobs the "
             "others have not claimed")
    opt("--plugins", default="", metavar="MODULE[,MODULE]",
        help="import these modules first (they register your own generators / objectives); "
             "pool and Ray workers import them too")
    opt("--quiet", action="store_true", help="no progress display")
    return p


def options_to_config(a: argparse.Namespace) -> dict:
    """Map command-line options onto config sections (only the options that were given)."""

    base: dict = {"run": {}, "model": {}, "data": {}, "train": {}, "eval": {}}
    given = vars(a)
    for dest, key in CONFIG_KEYS.items():
        val = given.get(dest)
        if dest == "probes" and val is not None:
            val = "" if val == "none" else val
        if val is not None:
            sec, name = key.split(".")
            base.setdefault(sec, {})[name] = val
    if given.get("ensemble"):
        base["run"]["ensembles"] = list(a.ensemble)
    if given.get("rungs"):
        base.setdefault("budget", {})["rungs"] = parse_int_list("--rungs", a.rungs)
    params = {}
    if a.generator and ":" in a.generator:  # timm:resnet18 -> generator timm, model resnet18
        from unnas.population import parse_generator

        base["model"]["generator"], params = parse_generator(a.generator)
    if a.params or params:
        from unnas.population import parse_params

        params = {**params, **parse_params(a.params)}
        base["model"]["params"] = params
    if given.get("vary"):
        from unnas.population import parse_vary

        base["model"]["vary"] = parse_vary(a.vary)
    return {k: v for k, v in base.items() if v}


def parse_int_list(field: str, text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise UserError(field, text, "comma-separated integers, e.g. 1,3,9") from None


def main(argv: list[str] | None = None, prog: str = "python -m unnas.rank") -> int:
    args = parse_command(parser(prog), argv)
    try:
        from unnas import config
        from unnas.ranking import run_ranking
        from unnas.runner import import_plugins

        plugins = tuple(m.strip() for m in args.plugins.split(",") if m.strip())
        import_plugins(plugins)  # before the config: plugin objectives add config sections
        cfg = config.load(args.config, args.overrides, base=options_to_config(args))
        return run_ranking(cfg, quiet=args.quiet, retry_failed=args.retry_failed, join=args.join,
                           ray_address=args.ray_address, plugins=plugins)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
