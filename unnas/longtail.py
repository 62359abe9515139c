"""``unnas longtail`` (and ``python -m unnas.longtail``): decoupled classifier re-balancing on long-tailed data (joint, NCM,
cRT, tau-norm, LWS; Kang et al. 2020). Argument parsing only; the work is in
:mod:`unnas.longtail_run`."""

from __future__ import annotations

import argparse
import dataclasses
import sys

import yaml

from unnas.cli import ArgumentParser, deprecated, finish, parse_command
from unnas.errors import UserError

EXAMPLES = (
    "unnas longtail --data digits-lt --epochs 10",
    "unnas longtail --config cifar10-lt-decoupled --data-root DIR",
    "unnas longtail --data cifar10-lt --pretext rotation --generator resnet --params width=16",
)

STAGE2_PREFIX = "stage2."
# This command's own defaults where they differ from the config's: below a --config file, which
# wins over them, as the command's flags win over the file.
COMMAND_DEFAULTS = {"data": {"name": "digits-lt"}, "model": {"generator": "resnet"},
                    "run": {"pretext": "supervised", "num_archs": 1}, "train": {"epochs": 100}}


def parser(prog: str = "python -m unnas.longtail") -> argparse.ArgumentParser:
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted config overrides, e.g. train.epochs=30 data.val_fraction=0.1 stage2.crt_lr=0.05")
    p.add_argument("--data", help="dataset; NAME-lt is the long-tailed variant")
    p.add_argument("--data-root", help="dataset folder")
    p.add_argument("--imbalance", type=float, help="imbalance ratio rho = n_max / n_min (default 100 for -lt names)")
    p.add_argument("--generator", dest="arch",
                   help="generator name, ArchSpec JSON or a .json file holding one")
    deprecated(p, "--arch", "--generator", "arch")
    p.add_argument("--params", nargs="*", default=[], metavar="K=V", help="fixed generator parameters (YAML values)")
    p.add_argument("--pretext",
                   help="stage-1 objective: supervised, rotation, jigsaw, colorization or moco")
    p.add_argument("-n", "--num-archs", type=int, help="population size: architectures sampled from the "
                                                                "generator")
    p.add_argument("--seed", type=int, dest="master_seed", help="seed of the population sample (default: 0)")
    deprecated(p, "--master-seed", "--seed", "master_seed", type=int)
    p.add_argument("--train-seed", type=int, dest="seed", default=0, help="training seed (stage 1 and stage 2)")
    p.add_argument("--checkpoint", help="stage-1 weights to load instead of training")
    p.add_argument("--epochs", type=int, help="stage-1 training epochs")
    p.add_argument("--steps", type=int, help="stage-1 budget in steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int, help="stage-1 batch size (default: 64)")
    p.add_argument("--lr", type=float, help="stage-1 learning rate (default: 0.05)")
    p.add_argument("--sampler", default="instance", help="stage-1 sampler: instance, class, sqrt, progressive")
    p.add_argument("--stage2-sampler", default="class", help="cRT / LWS sampler: instance, class, sqrt, progressive")
    p.add_argument("--stage2-views", type=int, default=0,
                   help="augmented copies of the training set that cRT and LWS train on (0: plain features)")
    p.add_argument("--crt-epochs", type=int, default=30, help="cRT classifier retraining epochs")
    p.add_argument("--lws-epochs", type=int, default=30, help="LWS scale learning epochs")
    p.add_argument("--shot-thresholds", default="auto",
                   help="many/few-shot thresholds: auto, paper (100,20), or MANY,FEW")
    p.add_argument("--no-feature-cache", action="store_true", help="do not cache extracted features")
    p.add_argument("--name", help="run folder name under --runs-dir (default: derived from the options)")
    p.add_argument("--runs-dir", help="where run folders are created (default: runs)")
    p.add_argument("--config", help="YAML config file (sections data, model, train, eval, run, <objective>)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--wandb", choices=["disabled", "offline", "online"], metavar="MODE",
                   help="Weights & Biases logging: disabled, offline or online")
    p.add_argument("--quiet", action="store_true", help="no per-step progress")
    return finish(p, defaults={"data": COMMAND_DEFAULTS["data"]["name"], "arch": COMMAND_DEFAULTS["model"]["generator"],
                               "pretext": COMMAND_DEFAULTS["run"]["pretext"], "num_archs": COMMAND_DEFAULTS["run"]["num_archs"],
                               "epochs": COMMAND_DEFAULTS["train"]["epochs"],
                               "imbalance": "100 for NAME-lt data, else 1", "data_root": "the dataset's own",
                               "runs_dir": "runs", "device": "auto", "wandb": "disabled",
                               "name": "derived from the options"}, examples=EXAMPLES)


def options_to_config(a: argparse.Namespace) -> dict:
    base: dict = {"run": {}, "model": {}, "data": {}, "train": {}}
    pairs = [("run", "pretext", a.pretext), ("run", "num_archs", a.num_archs), ("run", "master_seed", a.master_seed),
             ("run", "name", a.name), ("run", "runs_dir", a.runs_dir), ("run", "device", a.device),
             ("run", "wandb", a.wandb), ("data", "name", a.data), ("data", "root", a.data_root),
             ("data", "imbalance", a.imbalance), ("train", "epochs", a.epochs), ("train", "steps", a.steps),
             ("train", "batch_size", a.batch_size), ("train", "lr", a.lr)]
    for sec, key, val in pairs:
        if val is not None:
            base[sec][key] = val
    if a.arch and not a.arch.lstrip().startswith("{") and not a.arch.endswith(".json"):
        base["model"]["generator"] = a.arch
    if a.params:
        from unnas.population import parse_params

        base["model"]["params"] = parse_params(a.params)
    return {k: v for k, v in base.items() if v}


def longtail_options(a: argparse.Namespace, stage2_overrides: list[str]):
    from unnas.eval.decoupled import DecoupledOptions, parse_thresholds
    from unnas.longtail_run import LongtailOptions

    thresholds = parse_thresholds(a.shot_thresholds)
    stage2 = DecoupledOptions(thresholds=thresholds, sampler=a.stage2_sampler, crt_epochs=a.crt_epochs,
                              lws_epochs=a.lws_epochs)
    fields = {f.name: f for f in dataclasses.fields(DecoupledOptions)}
    changes = {}
    for item in stage2_overrides:
        key, val = item[len(STAGE2_PREFIX):].split("=", 1)
        if key not in fields or key == "thresholds":
            raise UserError("override", item, [STAGE2_PREFIX + k for k in fields if k != "thresholds"],
                            message=f"unknown stage-2 option {key!r}")
        v = yaml.safe_load(val)
        default = getattr(stage2, key)
        if isinstance(default, tuple):
            v = tuple(v) if isinstance(v, (list, tuple)) else (v,)
        elif isinstance(default, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if not isinstance(v, type(default)) or isinstance(v, bool) != isinstance(default, bool):
            raise UserError("override", item, f"a value of type {type(default).__name__}", message="wrong type")
        changes[key] = v
    stage2 = dataclasses.replace(stage2, **changes)
    return LongtailOptions(arch=a.arch or "", checkpoint=a.checkpoint or "", seed=a.seed, stage1_sampler=a.sampler,
                           stage2_views=a.stage2_views, feature_cache=not a.no_feature_cache, stage2=stage2)


def build_config(args: argparse.Namespace, overrides: list[str]):
    """The run's config: built-in defaults <- this command's defaults <- ``--config`` <- flags <- overrides."""
    from unnas import config

    return config.load(args.config, overrides, base=options_to_config(args), defaults=COMMAND_DEFAULTS)


def seed_note(argv: list[str]) -> None:
    """``--seed`` once meant the training seed here: say what it means now."""
    if any(a == "--seed" or a.startswith("--seed=") for a in argv):
        print("note: --seed is the population seed, as in every unnas command; the training seed is --train-seed",
              file=sys.stderr)


def main(argv: list[str] | None = None, prog: str = "python -m unnas.longtail") -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_command(parser(prog), argv)
    seed_note(argv)
    try:
        from unnas.longtail_run import run_longtail

        stage2 = [o for o in args.overrides if o.startswith(STAGE2_PREFIX)]
        others = [o for o in args.overrides if not o.startswith(STAGE2_PREFIX)]
        for o in stage2:
            if "=" not in o:
                raise UserError("override", o, "key=value, e.g. stage2.crt_lr=0.05", message="not of the form key=value")
        cfg = build_config(args, others)
        run_longtail(cfg, longtail_options(args, stage2), quiet=args.quiet)
        return 0
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
