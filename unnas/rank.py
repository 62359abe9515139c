"""``python -m unnas.rank``: rank generated networks by a label-free objective and compare the
ranking with the supervised one. Argument parsing only; the work is in :mod:`unnas.ranking`."""

from __future__ import annotations

import argparse
import sys

from unnas.cli import ArgumentParser, count
from unnas.errors import UserError


def parser(conflict_handler: str = "error") -> argparse.ArgumentParser:
    """The options (``conflict_handler="resolve"`` lets a command built on them redefine one)."""
    p = ArgumentParser(prog="python -m unnas.rank", description=__doc__.split("\n\n")[0],
                       formatter_class=argparse.RawDescriptionHelpFormatter, conflict_handler=conflict_handler)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="dotted config overrides, e.g. train.epochs=3 moco.queue_size=1024")
    p.add_argument("--pretext", help="label-free objective(s), comma-separated (default: run.pretext)")
    p.add_argument("--generator", help="network generator (default: model.generator)")
    p.add_argument("--params", nargs="*", default=[], metavar="K=V",
                   help="fixed generator parameters (YAML values), e.g. nodes=16 k=4")
    p.add_argument("--num-archs", type=int, help="candidates sampled from the generator")
    for bound in ("min", "max"):
        for what in ("params", "flops"):
            p.add_argument(f"--{bound}-{what}", type=count, metavar="N",
                           help=f"keep candidates with {'at least' if bound == 'min' else 'at most'} N backbone "
                                f"{'parameters' if what == 'params' else 'FLOPs per image'} (e.g. 2M, 300M, 1.5G)")
    p.add_argument("--seeds", type=int, help="training seeds per candidate")
    p.add_argument("--master-seed", type=int, help="seed of the population sample")
    p.add_argument("--data", help="dataset name (digits, fake, mnist, fashion-mnist, cifar10, cifar100, "
                                  "imagefolder; NAME-lt for the long-tailed variant)")
    p.add_argument("--data-root", help="dataset folder")
    p.add_argument("--epochs", type=int, help="training epochs per job")
    p.add_argument("--steps", type=int, help="training budget in steps (overrides --epochs)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--score",
                   help="the column that ranks candidates: pretext (default: each objective's own label-free held-out "
                        "score), a label-free score of the trained network (rankme, alpha_req, alignment, uniformity, "
                        "heldout_loss, sotl_e) or a probe that reads labels (knn, linear; see --probes)")
    p.add_argument("--probes", help="probes computed beside the label-free score, which read labels: knn (default), "
                                    "knn,linear, or none")
    p.add_argument("--proxies", metavar="NAME[,NAME]",
                   help="zero-cost proxies, each a job without training (e.g. synflow,naswot,jacob_cov); "
                        "with --pretext none nothing is trained")
    p.add_argument("--ensemble", action="append", default=[], metavar="SCORE,SCORE[,...]",
                   help="combine label-free scores (objectives, proxies, params, flops) by mean rank; repeatable")
    p.add_argument("--reference", metavar="FILE",
                   help="published table (CSV: structure,accuracy columns; or JSON as NAS-Bench-Macro's) to compare "
                        "every ranking with; the supervised jobs then run only with --supervised")
    p.add_argument("--budget", choices=["fixed", "sh"], help="fixed (every candidate --epochs) or sh (successive "
                                                             "halving over rungs of epochs)")
    p.add_argument("--rungs", metavar="E,E,...", help="successive-halving rungs in epochs, e.g. 1,3,9 "
                                                      "(default: --epochs / eta^k)")
    p.add_argument("--eta", type=int, help="successive halving: keep the best 1/eta at each rung (default 3)")
    sup = p.add_mutually_exclusive_group()
    sup.add_argument("--supervised", dest="supervised", action="store_true", default=None,
                     help="also train every candidate with labels (the default without --reference)")
    sup.add_argument("--no-supervised", dest="supervised", action="store_false", help="skip the supervised jobs")
    p.add_argument("--name", help="run folder name under --runs-dir (default: derived from the options)")
    p.add_argument("--runs-dir", help="where run folders are created (default: runs)")
    p.add_argument("--config", help="YAML config file (sections data, model, train, eval, run, <objective>)")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--wandb", choices=["disabled", "offline", "online"], help="Weights & Biases logging")
    p.add_argument("--executor", help="auto (the default: every core, worker processes x threads chosen from the "
                                      "core count and the jobs) | local (one job at a time in this process) | "
                                      "pool (worker processes on this machine) | ray (Ray tasks; needs unnas[ray])")
    p.add_argument("--workers", type=int, help="parallel jobs for auto / pool / ray (default: cores // threads per job)")
    p.add_argument("--threads-per-worker", type=int,
                   help="intra-op threads of every job on every executor (default: auto spreads the cores over "
                        "the jobs, the other executors use 1 in deterministic mode; CPU results depend on it, "
                        "so keep it fixed to compare executors)")
    p.add_argument("--ray-address", default="",
                   help="Ray cluster: auto | HOST:PORT | ray://HOST:PORT (default: start a local Ray instance)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run failed, diverged and timed-out jobs again (resuming from their checkpoints)")
    p.add_argument("--join", action="store_true",
                   help="share the run folder with other runners started with --join; each runs jobs the "
                        "others have not claimed")
    p.add_argument("--plugins", default="", metavar="MODULE[,MODULE]",
                   help="import these modules first (they register your own generators / objectives); "
                        "pool and Ray workers import them too")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    return p


def options_to_config(a: argparse.Namespace) -> dict:
    """Map command-line options onto config sections (only the options that were given)."""

    base: dict = {"run": {}, "model": {}, "data": {}, "train": {}, "eval": {}}
    pairs = [("run", "pretext", a.pretext), ("run", "num_archs", a.num_archs), ("run", "seeds", a.seeds),
             ("run", "master_seed", a.master_seed), ("run", "name", a.name), ("run", "runs_dir", a.runs_dir),
             ("run", "device", a.device), ("run", "wandb", a.wandb), ("run", "executor", a.executor),
             ("run", "workers", a.workers), ("run", "threads_per_worker", a.threads_per_worker),
             ("model", "generator", a.generator), ("model", "min_params", a.min_params),
             ("model", "max_params", a.max_params), ("model", "min_flops", a.min_flops),
             ("model", "max_flops", a.max_flops), ("data", "name", a.data),
             ("data", "root", a.data_root), ("train", "epochs", a.epochs), ("train", "steps", a.steps),
             ("train", "batch_size", a.batch_size), ("train", "lr", a.lr), ("eval", "score", a.score),
             ("run", "proxies", a.proxies), ("run", "supervised", a.supervised), ("reference", "path", a.reference),
             ("budget", "kind", a.budget), ("budget", "eta", a.eta),
             ("eval", "probes", None if a.probes is None else ("" if a.probes == "none" else a.probes))]
    for sec, key, val in pairs:
        if val is not None:
            base.setdefault(sec, {})[key] = val
    if a.ensemble:
        base["run"]["ensembles"] = list(a.ensemble)
    if a.rungs:
        base.setdefault("budget", {})["rungs"] = parse_int_list("--rungs", a.rungs)
    params = {}
    if a.generator and ":" in a.generator:  # timm:resnet18 -> generator timm, model resnet18
        from unnas.population import parse_generator

        base["model"]["generator"], params = parse_generator(a.generator)
    if a.params or params:
        from unnas.population import parse_params

        params = {**params, **parse_params(a.params)}
        base["model"]["params"] = params
    return {k: v for k, v in base.items() if v}


def parse_int_list(field: str, text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise UserError(field, text, "comma-separated integers, e.g. 1,3,9") from None


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_intermixed_args(argv)
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
