"""The decoupled long-tail run behind ``python -m unnas.longtail``.

For each architecture: stage 1 trains the backbone on the long-tailed training split with the
chosen objective (or loads a checkpoint); features of the train / val / test splits are extracted
once from the frozen network and cached (keyed by the weights and the split's images); stage 2
runs every classifier re-balancing method of :mod:`unnas.eval.decoupled` on those features and reports
many / medium / few / all top-1 on the balanced test split.

The joint classifier is the stage-1 linear head for ``supervised``. For a label-free objective
(rotation, jigsaw, colorization, moco) the backbone is the pretext-trained one and the "joint"
classifier is a linear probe trained with instance-balanced sampling (the same SGD recipe as
cRT, only the sampler differs); every output says which one was used.

Run folder: ``config.yaml``, ``class_counts.json`` (per-split class counts and the long-tail
profile), ``models/<arch_id>.pt`` (stage-1 weights; a rerun reuses them), ``results.json``,
``results.csv``, ``log.jsonl`` and, with ``--num-archs > 1``, the Spearman correlation of the
architecture rankings between methods.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from unnas import config as config_mod
from unnas.config import Config
from unnas.data import Data, load_dataset, longtail_counts
from unnas.data.datasets import cache_dir as default_cache_dir
from unnas.engine import load_checkpoint, resolve_device, save_atomic, steps_per_epoch, train
from unnas.errors import UserError
from unnas.eval.cache import augmented_features, cached_features
from unnas.eval.decoupled import GROUPS, DecoupledOptions, FeatureSplits, parse_thresholds, run_decoupled
from unnas.eval.linear import LinearClassifier, fit_linear
from unnas.eval.samplers import SAMPLER_NAMES, get_sampler, instance_balanced
from unnas.longtail_tables import csv_rows, dumps, format_matrix, format_table, method_rankings
from unnas.objectives.base import DataInfo, build_objective, objective_class
from unnas.outputs import write_json, write_provenance
from unnas.registry import DATASETS, GENERATORS, OBJECTIVES
from unnas.spec import ArchSpec, build, get_generator
from unnas.tracking import WANDB_MODES, Tracker

__all__ = ["LongtailOptions", "run_longtail", "resolve_specs", "stage1", "joint_classifier", "evaluate_arch",
           "CHECKPOINT_FORMAT", "PRETEXTS"]

CHECKPOINT_FORMAT = "unnas.longtail/1"
PRETEXTS = ("supervised", "rotation", "jigsaw", "colorization", "moco")


@dataclass(frozen=True)
class LongtailOptions:
    """What ``python -m unnas.longtail`` adds to the shared config (data / model / train / run)."""

    arch: str = ""  # generator name, ArchSpec JSON, or a .json file holding one ("" = model.generator)
    checkpoint: str = ""  # stage-1 weights to load instead of training
    seed: int = 0  # training seed (stage 1 and stage 2)
    stage1_sampler: str = "instance"  # instance | class | sqrt | progressive
    stage2_views: int = 0  # augmented copies of the training set that cRT / LWS train on (0 = plain features)
    feature_cache: bool = True
    stage2: DecoupledOptions = field(default_factory=DecoupledOptions)


# ------------------------------------------------------------------ validation and specs
def _load_spec_text(arch: str) -> ArchSpec | None:
    text = arch
    if arch.endswith(".json"):
        p = Path(arch)
        if not p.is_file():
            raise UserError("--generator", arch, "a generator name, an ArchSpec JSON or a .json file", message="file not found")
        text = p.read_text()
    if not text.lstrip().startswith("{"):
        return None
    try:
        d = json.loads(text)
        spec = ArchSpec(d["generator"], d.get("params", {}), d.get("seed", 0))
    except (ValueError, KeyError, TypeError) as e:
        raise UserError("--generator", arch, 'ArchSpec JSON like {"generator": "resnet", "params": {}, "seed": 0}',
                        message=f"not a valid spec ({e.__class__.__name__})") from None
    GENERATORS.get(spec.generator)
    return spec


def resolve_specs(cfg: Config, opts: LongtailOptions, in_channels: int, image_size: int) -> list[ArchSpec]:
    """The architectures to run: one given spec, or ``run.num_archs`` sampled from a generator."""
    spec = _load_spec_text(opts.arch) if opts.arch else None
    if spec is not None:
        if cfg.run.num_archs != 1:
            raise UserError("--num-archs", cfg.run.num_archs, "1 with a fixed --generator spec",
                            message="a single spec cannot be sampled; give a generator name")
        get_generator(spec.generator).resolve(spec.params)
        return [spec]
    from unnas.population import parse_generator, sample_population

    gen_name, inline = parse_generator(opts.arch or cfg.model.generator)
    base = {**inline, **dict(cfg.model.params)}
    if cfg.run.num_archs == 1:
        return [ArchSpec(gen_name, get_generator(gen_name).resolve(base), cfg.run.master_seed)]
    return sample_population(gen_name, cfg.run.num_archs, cfg.run.master_seed, base,
                             in_channels=in_channels, image_size=image_size)


def validate(cfg: Config, opts: LongtailOptions) -> None:
    """Everything checkable before work starts (one clear error each)."""
    name = cfg.data.name
    if name not in DATASETS and not (name.endswith("-lt") and name[:-3] in DATASETS):
        raise UserError("--data", name, DATASETS.names() + [f"{n}-lt" for n in DATASETS.names()],
                        message=f"unknown dataset {name!r}")
    pretext = cfg.run.pretext
    if pretext not in OBJECTIVES:
        allowed = [p for p in PRETEXTS if p in OBJECTIVES]
        raise UserError("--pretext", pretext, allowed, message=f"unknown or unavailable objective {pretext!r}")
    checks = [("--epochs", cfg.train.epochs, cfg.train.epochs >= 0, "an integer >= 0"),
              ("--steps", cfg.train.steps, cfg.train.steps >= 0, "an integer >= 0"),
              ("--batch-size", cfg.train.batch_size, cfg.train.batch_size > 0, "an integer > 0"),
              ("--lr", cfg.train.lr, cfg.train.lr > 0, "a positive number"),
              ("--num-archs", cfg.run.num_archs, cfg.run.num_archs >= 1, "an integer >= 1"),
              ("--imbalance", cfg.data.imbalance, cfg.data.imbalance >= 1, "a ratio >= 1"),
              ("--wandb", cfg.run.wandb, cfg.run.wandb in WANDB_MODES, ", ".join(WANDB_MODES)),
              ("--sampler", opts.stage1_sampler, opts.stage1_sampler in SAMPLER_NAMES, ", ".join(SAMPLER_NAMES)),
              ("--stage2-sampler", opts.stage2.sampler, opts.stage2.sampler in SAMPLER_NAMES,
               ", ".join(SAMPLER_NAMES)),
              ("--stage2-views", opts.stage2_views, opts.stage2_views >= 0, "an integer >= 0"),
              ("--crt-epochs", opts.stage2.crt_epochs, opts.stage2.crt_epochs >= 0, "an integer >= 0"),
              ("--lws-epochs", opts.stage2.lws_epochs, opts.stage2.lws_epochs >= 0, "an integer >= 0")]
    for fld, value, ok, allowed in checks:
        if not ok:
            raise UserError(fld, value, allowed)
    parse_thresholds(opts.stage2.thresholds)
    if _load_spec_text(opts.arch) is None if opts.arch else True:
        from unnas.population import parse_generator

        GENERATORS.get(parse_generator(opts.arch or cfg.model.generator)[0])
    if not objective_class(pretext).uses_labels and opts.stage1_sampler != "instance":
        raise UserError("--sampler", opts.stage1_sampler, "instance (for a label-free objective)",
                        message=f"{pretext} never sees labels, so stage 1 cannot sample by class")
    if opts.checkpoint:
        if not Path(opts.checkpoint).is_file():
            raise UserError("--checkpoint", opts.checkpoint, "an existing checkpoint file", message="file not found")
        if cfg.run.num_archs != 1:
            raise UserError("--num-archs", cfg.run.num_archs, "1 with --checkpoint")
    elif cfg.train.epochs == 0 and cfg.train.steps == 0:
        raise UserError("--epochs", 0, "at least 1 epoch (or --steps > 0, or --checkpoint)",
                        message="no training budget")
    resolve_device(cfg.run.device)


# ------------------------------------------------------------------ stage 1
def _stage1_sampler(cfg: Config, opts: LongtailOptions, n_train: int):
    spe = steps_per_epoch(n_train, cfg.train.batch_size)
    epochs = math.ceil(cfg.train.steps / spe) if cfg.train.steps > 0 else cfg.train.epochs
    return get_sampler(opts.stage1_sampler, max(1, epochs), "--sampler")


def _read_checkpoint(path: str, pretext: str) -> dict:
    """Normalize the three checkpoint layouts we read into ``{state, scope, spec, objective}``:
    ours (full objective), the runner's ``models/*.pt`` (backbone only) and the engine's
    ``epoch_*.pt`` (full objective, no spec)."""
    ck = load_checkpoint(Path(path))
    if not isinstance(ck, dict):
        raise UserError("--checkpoint", path, "a checkpoint written by unnas", message="not a mapping")
    if ck.get("format") == CHECKPOINT_FORMAT:
        return {"state": ck["objective_state"], "scope": "objective", "spec": ck.get("spec"),
                "objective": ck.get("objective")}
    if isinstance(ck.get("backbone"), dict):
        return {"state": ck["backbone"], "scope": "backbone", "spec": ck.get("spec"), "objective": ck.get("objective")}
    if isinstance(ck.get("objective"), dict):
        return {"state": ck["objective"], "scope": "objective", "spec": None, "objective": pretext}
    raise UserError("--checkpoint", path, "a checkpoint written by unnas (longtail, runner or engine)",
                    message="unknown layout")


def _result_config(d: dict, pretext: str) -> dict:
    """The config sections that determine stage-1 weights (not execution details)."""
    train = {k: v for k, v in (d.get("train") or {}).items() if k not in ("threads", "time_limit", "checkpoint")}
    return {"data": d.get("data"), "train": train, pretext: d.get(pretext)}


def stage1(spec: ArchSpec, data: Data, cfg: Config, opts: LongtailOptions, run_dir: Path, device: torch.device,
           log: Callable[[str], None] = print, progress=None, checkpoint: dict | None = None) -> tuple[Any, dict]:
    """Build the objective for ``spec`` and train it (or load weights). Returns ``(objective, info)``
    where ``info`` says where the weights came from and what the classifier head is."""
    pretext = cfg.run.pretext
    cls = objective_class(pretext)
    cls.check_data(DataInfo.of(data))
    torch.manual_seed(spec.seed)  # weight init (the only use of global random state)
    backbone = build(spec, cls.input_channels(data.channels))
    objective = build_objective(pretext, backbone, DataInfo.of(data), cfg.objectives.get(pretext))
    model_path = run_dir / "models" / f"{spec.arch_id}.pt"
    info: dict = {"arch_id": spec.arch_id, "spec": spec.to_json(), "pretext": pretext}
    if checkpoint is not None:
        target = objective if checkpoint["scope"] == "objective" else objective.backbone
        try:
            target.load_state_dict(checkpoint["state"])
        except (RuntimeError, KeyError) as e:
            raise UserError("--checkpoint", opts.checkpoint, f"weights of {spec.generator} for {pretext}",
                            message=f"does not fit the network ({str(e).splitlines()[0][:160]})") from None
        info.update(weights=f"checkpoint {opts.checkpoint}", head_loaded=checkpoint["scope"] == "objective")
        objective.eval()
        return objective.to(device), info
    if model_path.is_file():
        saved = load_checkpoint(model_path)
        if (_result_config(saved.get("config") or {}, pretext) != _result_config(config_mod.to_dict(cfg), pretext)
                or saved.get("seed") != opts.seed or saved.get("stage1_sampler") != opts.stage1_sampler):
            raise UserError("--name", run_dir.name, "a new --name for a different configuration",
                            message=f"{model_path} was trained with another configuration")
        objective.load_state_dict(saved["objective_state"])
        info.update(weights=f"reused {model_path}", head_loaded=True, history=saved.get("history", []))
        log(f"  stage 1: reusing {model_path}")
        objective.eval()
        return objective.to(device), info
    sampler = _stage1_sampler(cfg, opts, len(data.train))
    t0 = time.perf_counter()
    result = train(objective, data.train, cfg.train, seed=opts.seed, device=device,
                   checkpoint_dir=run_dir / "checkpoints" / spec.arch_id, progress=progress, sampler=sampler,
                   config=config_mod.to_dict(cfg), log=log)
    info.update(weights="trained", head_loaded=True, history=result.history, steps=result.steps,
                seconds=time.perf_counter() - t0, sampler=opts.stage1_sampler)
    save_atomic({"format": CHECKPOINT_FORMAT, "objective_state": objective.state_dict(), "spec": spec.to_json(),
                 "objective": pretext, "seed": opts.seed, "stage1_sampler": opts.stage1_sampler,
                 "config": config_mod.to_dict(cfg),
                 "history": result.history}, model_path)
    import shutil

    shutil.rmtree(run_dir / "checkpoints" / spec.arch_id, ignore_errors=True)
    return objective, info


def joint_classifier(objective, feats: FeatureSplits, num_classes: int, stage2: DecoupledOptions, seed: int,
                     head_loaded: bool = True) -> tuple[LinearClassifier, str]:
    """The stage-1 classifier: the supervised head, or an instance-balanced linear probe."""
    head = getattr(objective, "head", None)
    if getattr(objective, "uses_labels", False) and head_loaded and isinstance(head, torch.nn.Linear) \
            and head.out_features == num_classes:
        return (LinearClassifier(head.weight.detach().float().cpu().clone(), head.bias.detach().float().cpu().clone()),
                "stage-1 linear head (trained jointly with the backbone)")
    g = torch.Generator().manual_seed(int(seed))
    clf = fit_linear(feats.train_x, feats.train_y, num_classes, optimizer="sgd", sampler=instance_balanced,
                     epochs=stage2.crt_epochs, batch_size=stage2.batch_size, lr=stage2.crt_lr,
                     weight_decay=stage2.crt_weight_decay, generator=g)
    return clf, "linear probe on the frozen features, instance-balanced sampling (no joint head)"


def evaluate_arch(objective, data: Data, opts: LongtailOptions, device: torch.device, info: dict,
                  batch_size: int = 256) -> dict:
    """Features (cached) -> joint classifier -> every stage-2 method."""
    cdir = default_cache_dir() / "features" if opts.feature_cache else None
    ck = {"checkpoint": info.get("weights", ""), "arch_id": info["arch_id"], "data": data.name}
    f = {s: cached_features(objective, getattr(data, s).images, cache_dir=cdir, batch_size=batch_size,
                            device=device, label={**ck, "split": s}) for s in ("train", "val", "test")}
    if not all(torch.isfinite(x).all() for x in f.values()):
        raise UserError("stage 1", info["arch_id"], None, message="the backbone produces non-finite features")
    feats = FeatureSplits(f["train"], data.train.labels, f["val"], data.val.labels, f["test"], data.test.labels)
    joint, source = joint_classifier(objective, feats, data.num_classes, opts.stage2, opts.seed,
                                     info.get("head_loaded", True))
    sx = sy = None
    if opts.stage2_views > 0:
        sx = augmented_features(objective, data.train.images, opts.stage2_views, opts.seed, cache_dir=cdir,
                                batch_size=batch_size, device=device, label={**ck, "split": "train-augmented"})
        sy = data.train.labels.repeat(opts.stage2_views)
    res = run_decoupled(feats, joint, data.num_classes, opts.stage2, seed=opts.seed, stage2_x=sx, stage2_y=sy)
    res["joint_source"] = source
    res["stage2_data"] = (f"{opts.stage2_views} augmented view(s) of the training split" if opts.stage2_views
                          else "training-split features (no augmentation)")
    return res


def class_counts(data: Data, rho: float) -> dict:
    """Per-split class counts and the exponential profile the training split follows."""
    c = data.num_classes
    out = {"dataset": data.name, "num_classes": c, "class_names": data.class_names, "imbalance": rho,
           "train": data.train.class_counts(c), "val": data.val.class_counts(c), "test": data.test.class_counts(c)}
    if rho != 1:
        out["profile"] = longtail_counts(max(out["train"]), c, rho)
    return out


def default_name(cfg: Config, opts: LongtailOptions) -> str:
    d = config_mod.to_dict(cfg)
    d["run"] = {k: d["run"][k] for k in ("pretext", "num_archs", "master_seed")}
    d["longtail"] = {k: v for k, v in dataclasses.asdict(opts).items() if k != "feature_cache"}
    h = hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:6]
    return f"longtail-{cfg.data.name}-{cfg.run.pretext}-{h}"


def _effective_rho(cfg: Config) -> float:
    rho = float(cfg.data.imbalance)
    name = cfg.data.name
    if name.endswith("-lt") and name not in DATASETS and rho == 1.0:
        rho = 100.0  # the data layer's default for -lt names
    return rho


def run_longtail(cfg: Config, opts: LongtailOptions, quiet: bool = False,
                 out: Callable[[str], None] | None = None) -> dict:
    """Validate, then stage 1 + stage 2 for every architecture; writes the run folder and returns
    ``{"run_dir", "results": {arch_id: decoupled result}, "rankings"?}``."""
    say = out or (lambda s: print(s, flush=True))
    validate(cfg, opts)
    device = resolve_device(cfg.run.device)
    ck = _read_checkpoint(opts.checkpoint, cfg.run.pretext) if opts.checkpoint else None
    if ck is not None and ck.get("objective") and ck["objective"] != cfg.run.pretext:
        raise UserError("--pretext", cfg.run.pretext, str(ck["objective"]),
                        message=f"the checkpoint was trained with {ck['objective']}")
    data = load_dataset(cfg.data)
    in_ch = objective_class(cfg.run.pretext).input_channels(data.channels)
    if ck is not None and ck.get("spec"):
        specs = [ArchSpec.from_json(ck["spec"])]
    else:
        specs = resolve_specs(cfg, opts, in_ch, data.image_size[0])
    run_dir = Path(cfg.run.runs_dir) / (cfg.run.name or default_name(cfg, opts))
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError("--runs-dir", str(run_dir), "a writable folder", message=f"cannot create ({e.strerror})") from None
    rho = _effective_rho(cfg)
    cfg_dict = config_mod.to_dict(cfg)
    opts_dict = json.loads(dumps(dataclasses.asdict(opts)))
    (run_dir / "config.yaml").write_text(config_mod.to_yaml(cfg))
    write_json(run_dir / "longtail.json", opts_dict)
    counts = class_counts(data, rho)
    write_json(run_dir / "class_counts.json", counts)
    write_provenance(run_dir, device=str(resolve_device(cfg.run.device)))
    tracker = Tracker(run_dir, cfg.run.wandb, cfg.run.wandb_project, {**cfg_dict, "longtail": opts_dict},
                      run_dir.name)
    tracker.log("run_start", data=data.summary(), archs=[s.to_json() for s in specs], argv=sys.argv)
    label_free = not objective_class(cfg.run.pretext).uses_labels
    say(f"unnas.longtail {run_dir}  data={data.name} (rho={rho:g}; {len(data.train)} train, {len(data.val)} val, "
        f"{len(data.test)} test)  pretext={cfg.run.pretext}  archs={len(specs)}")
    say(f"train class counts: {counts['train']}")
    empty = [i for i, n in enumerate(counts["train"]) if n == 0]
    if empty:
        say(f"warning: classes {empty} have no training images at rho={rho:g} (n_max * (1/rho)^(i/(C-1)) < 1); "
            "they count as few-shot and NCM never predicts them")
    if label_free:
        say(f"stage 1 is {cfg.run.pretext} (label-free): the 'Joint' classifier is a linear probe on the "
            "pretext-trained backbone with instance-balanced sampling")
    results: dict[str, dict] = {}
    for i, spec in enumerate(specs):
        say(f"[{i + 1}/{len(specs)}] {spec.arch_id} {spec.to_json()}")
        last = [0.0]

        def progress(step, total, info, _last=last):
            if not quiet and (time.time() - _last[0] > 10 or step == total):
                _last[0] = time.time()
                say(f"  stage 1: step {step}/{total} epoch {info.get('epoch')} loss {info.get('loss', float('nan')):.3f}")

        objective, info = stage1(spec, data, cfg, opts, run_dir, device, log=say, progress=progress, checkpoint=ck)
        hist = info.get("history") or []
        if hist:
            say(f"  stage 1 ({info['weights']}): {len(hist)} epochs, last loss {hist[-1]['loss']:.3f} "
                f"acc {hist[-1]['acc']:.3f}")
        res = evaluate_arch(objective, data, opts, device, info, cfg.eval.batch_size)
        res["stage1"] = {k: v for k, v in info.items() if k != "history"}
        res["stage1"]["history"] = hist
        results[spec.arch_id] = res
        say(format_table(res))
        tracker.log("arch", arch_id=spec.arch_id, spec=spec.to_json(),
                    methods={m: {g: r[g] for g in GROUPS} for m, r in res["methods"].items()})
        tracker.table(f"longtail/{spec.arch_id}", ["method", *GROUPS],
                      [[m, *[r[g] for g in GROUPS]] for m, r in res["methods"].items()])
    summary: dict = {"run_dir": str(run_dir), "data": data.name, "imbalance": rho, "pretext": cfg.run.pretext,
                     "label_free_joint": label_free, "class_counts": counts, "results": results}
    if len(specs) > 1:
        summary["rankings"] = {m: method_rankings(results, m) for m in ("all", "few")}
        say(format_matrix(summary["rankings"]["all"]))
        say(format_matrix(summary["rankings"]["few"]))
    write_json(run_dir / "results.json", summary)
    rows = csv_rows(results)
    with open(run_dir / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    tracker.summary(**{f"{m}/{g}": r[g] for res in list(results.values())[:1] for m, r in res["methods"].items()
                       for g in GROUPS})
    tracker.finish()
    say(f"results: {run_dir / 'results.csv'}  {run_dir / 'results.json'}  class counts: "
        f"{run_dir / 'class_counts.json'}")
    return summary
