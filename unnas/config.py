"""Run configuration: frozen dataclasses are the schema and hold the defaults.

A YAML file and dotted overrides (``train.epochs=3``) merge on top through OmegaConf
structured configs. Unknown keys and wrong types are rejected with the key's path and the
allowed keys. Objectives register their own option dataclass (``OBJECTIVES.register(name,
config=Cls)``); it appears as a top-level section named after the objective (``moco.queue_size``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from unnas.errors import UserError
from unnas.registry import OBJECTIVES, PROXIES, STRATEGIES


@dataclass(frozen=True)
class DataConfig:
    name: str = "digits"
    root: str = ""  # folder of the dataset files; "" = the dataset's default location
    image_size: int = 16  # resize target for datasets without a native size (digits)
    val_fraction: float = 0.1  # carved from train, stratified
    test_fraction: float = 0.2  # only for datasets without an official test split
    subset_per_class: int = 0  # keep at most this many training images per class (0 = all)
    test_subset: int = 0  # evaluate on a seeded uniform subset of this many test images (0 = all)
    imbalance: float = 1.0  # long-tail imbalance ratio rho (1 = balanced)
    download: bool = False  # torchvision datasets only
    seed: int = 0  # split / subset randomness
    # video datasets (clips stored as uint8 (N, T, C, H, W))
    frames: int = 8  # frames per clip
    frame_rate: float = 0.0  # video folders: resample to this many frames per second (0 = as recorded)
    annotations: str = ""  # UCF-101 / HMDB-51: folder of the official split files
    fold: int = 1  # UCF-101 / HMDB-51: which of the three official splits


@dataclass(frozen=True)
class ModelConfig:
    generator: str = "randwire-ws"
    params: dict[str, Any] = field(default_factory=dict)  # fixed generator parameters
    vary: dict[str, Any] = field(default_factory=dict)  # parameters drawn uniformly from a list each (NDS sizes)
    # complexity control (NDS): keep candidates whose backbone params / FLOPs of one input image
    # fall inside [min, max]; 0 = no bound
    min_params: float = 0.0
    max_params: float = 0.0
    min_flops: float = 0.0
    max_flops: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 4
    steps: int = 0  # > 0: budget in optimizer steps instead of epochs
    batch_size: int = 64
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    warmup_epochs: float = 0.0
    precise_bn: int = 512  # samples used to recompute BN statistics after training (0 = off)
    grad_clip: float = 0.0  # max gradient norm (0 = off)
    channels_last: bool = True
    amp: bool = True  # mixed precision where the device runs it fast; false = float32
    precision: str = "auto"  # auto | float32 | bfloat16 | float16 (unnas.precision)
    deterministic: bool = True
    threads: int = 0  # torch intra-op threads (0 = leave torch's default)
    time_limit: float = 0.0  # seconds per job (0 = none)
    checkpoint: bool = True  # write a checkpoint at the end of every epoch


@dataclass(frozen=True)
class EvalConfig:
    # which column ranks the candidates: default (the first objective's measured best label-free
    # score, its class's default_score; stored resolved), pretext (the objective's own label-free
    # held-out score), a trained-network score (rankme, ...) or a probe that reads labels: knn | linear
    score: str = "default"
    probes: str = "knn"  # probes computed beside the label-free score (they use labels): knn,linear or ""
    knn_k: int = 200
    knn_t: float = 0.1
    batch_size: int = 256


@dataclass(frozen=True)
class RunConfig:
    name: str = ""  # run folder name; "" = derived from the options
    runs_dir: str = "runs"
    pretext: str = "rotation"  # comma-separated objectives
    num_archs: int = 8
    seeds: int = 1  # training seeds per candidate
    master_seed: int = 0  # seeds the population sample
    # also train the supervised reference; null = yes, unless a reference table is given
    supervised: Optional[bool] = None
    proxies: str = ""  # comma-separated zero-cost proxies, each a job without training
    ensembles: list[str] = field(default_factory=list)  # each a comma-separated list of label-free scores
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    wandb: str = "disabled"  # disabled | offline | online
    wandb_project: str = "unnas"
    executor: str = "auto"  # auto (every core: pool or local) | local | pool | ray
    workers: int = 0
    threads_per_worker: int = 0


@dataclass(frozen=True)
class BudgetConfig:
    """How much training each candidate gets: ``fixed`` (every candidate ``train.epochs``) or ``sh``
    (successive halving: every candidate trains to the first rung, the best 1/eta by ``score``
    continue from their own checkpoints to the next, ...; the cosine schedule spans the last rung)."""

    kind: str = "fixed"  # fixed | sh
    rungs: list[int] = field(default_factory=list)  # epochs per rung, increasing; [] = train.epochs / eta^k
    eta: int = 3
    score: str = ""  # the score column that selects survivors ("" = the first objective's label-free score)


@dataclass(frozen=True)
class ReferenceConfig:
    """A published table to compare rankings with (unnas.references): CSV or JSON."""

    path: str = ""
    key_column: str = ""  # "" = structure | arch | arch_str | key
    value_column: str = ""  # "" = accuracy | mean_acc | test_acc | acc


@dataclass(frozen=True)
class ProxyConfig:
    """Shared settings of the zero-cost proxy jobs."""

    # the label-free objective whose loss the gradient proxies use (each proxy's batch size is an
    # option of its own section, e.g. naswot.batch_size)
    loss: str = "rotation"


@dataclass(frozen=True)
class SearchConfig:
    """A search (``python -m unnas.search``): either a strategy over candidates evaluated as jobs
    (``strategy``; its options are the strategy's own section, e.g. ``lanas.samples``) or one
    supernet search (``method``; its options are the method's section, e.g. ``darts.arch_lr``)."""

    method: str = ""  # a supernet search method: darts | dmasking
    strategy: str = ""  # a search strategy: random | evolution | lanas
    score: str = ""  # strategies: the column that scores a candidate ("" = the first objective; reference = the table)
    time_budget: float = 0.0  # strategies: stop after this many seconds of job time (0 = the strategy's samples only)
    clock: str = "wall"  # strategies: what time_budget counts: wall (each job's wall seconds) | cpu (its CPU seconds)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    objectives: dict[str, Any] = field(default_factory=dict)  # name -> option dataclass


_SECTIONS = ("data", "model", "train", "eval", "run", "budget", "reference", "proxy", "search")


def _objective_configs() -> dict[str, type]:
    """Option sections of the registered objectives, proxies and strategies (names never collide)."""
    out = {}
    for reg in (OBJECTIVES, PROXIES, STRATEGIES):
        for name in reg.names():
            cls = reg.meta(name).get("config")
            if cls is not None:
                out[name] = cls
    return out


def schema() -> DictConfig:
    """The full structured schema (core sections plus each objective's section)."""
    base = {s: OmegaConf.structured(getattr(Config(), s).__class__) for s in _SECTIONS}
    for name, cls in _objective_configs().items():
        base[name] = OmegaConf.structured(cls)
    for node in base.values():
        OmegaConf.set_readonly(node, False)  # frozen dataclasses: the merged result is frozen again
    cfg = OmegaConf.create(base)
    OmegaConf.set_struct(cfg, True)
    for free in (cfg.model.params, cfg.model.vary):  # generator parameters are checked by the generator
        OmegaConf.set_struct(free, False)
    return cfg


def _allowed_keys(cfg: DictConfig, path: str) -> list[str]:
    node: Any = cfg
    allowed: list[str] = list(cfg.keys())
    for part in path.split(".")[:-1] if path else []:
        if isinstance(node, DictConfig) and part in node:
            node = node[part]
            allowed = list(node.keys()) if isinstance(node, DictConfig) else []
        else:
            break
    return [str(a) for a in allowed]


def _merge(cfg: DictConfig, other: DictConfig | dict, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(cfg, other)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "?"
        msg = str(e).splitlines()[0]
        if "not in struct" in msg or "Key '" in msg and "not" in msg:
            allowed = [k for k in _allowed_keys(cfg, key)]
            if key.startswith("model.params"):
                allowed = None
            raise UserError(f"{source} key {key}", None, allowed, message="unknown key") from None
        wanted = re.search(r"could not be converted to (\w+)", msg)
        raise UserError(f"{source} key {key}", None, f"a value of type {wanted.group(1)}" if wanted else None,
                        message=msg) from None


def load(path: str | Path | None = None, overrides: Iterable[str] = (), base: dict | None = None,
         defaults: dict | None = None) -> Config:
    """Merge defaults <- ``defaults`` (a command's own) <- YAML file <- ``base`` (the command's flags)
    <- dotted overrides: flags win over the file, the file wins over the built-in defaults."""
    return to_config(merge_sources(schema(), path, overrides, base, defaults))


def merge_sources(cfg: DictConfig, path: str | Path | None = None, overrides: Iterable[str] = (),
                  base: dict | None = None, defaults: dict | None = None) -> DictConfig:
    """``cfg`` (a structured schema) <- ``defaults`` (a command's own) <- YAML file <- ``base`` (flags)
    <- dotted overrides, checked against the schema (commands with extra sections pass their own schema)."""
    if defaults:
        cfg = _merge(cfg, OmegaConf.create(defaults), "default")
    if path:
        p = Path(path)
        if not p.is_file():
            from unnas.catalog import configs, resolve_config

            p = resolve_config(str(path)) or p  # a shipped config by name: --config fidelity
        if not p.is_file():
            raise UserError("--config", str(path), f"an existing YAML file or a shipped config ({', '.join(configs())})",
                            message="file not found")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise UserError("--config", str(path), None, message=f"not valid YAML ({e.__class__.__name__})") from None
        if not isinstance(data, dict):
            raise UserError("--config", str(path), "a mapping of sections", message="not a mapping")
        cfg = _merge(cfg, OmegaConf.create(data), str(path))
    if base:
        cfg = _merge(cfg, OmegaConf.create(base), "option")
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise UserError("override", item, "key=value, e.g. train.epochs=3", message="not of the form key=value")
    if overrides:
        try:
            dot = OmegaConf.from_dotlist(overrides)
        except OmegaConfBaseException as e:
            raise UserError("override", overrides, None, message=str(e).splitlines()[0]) from None
        cfg = _merge(cfg, dot, "override")
    return cfg


def to_config(cfg: DictConfig) -> Config:
    sections = {s: OmegaConf.to_object(cfg[s]) for s in _SECTIONS}
    objs = {name: OmegaConf.to_object(cfg[name]) for name in _objective_configs() if name in cfg}
    # to_object returns instances of the (frozen) dataclasses; model.params stays a plain dict
    return Config(**sections, objectives=objs)


def to_dict(cfg: Config) -> dict:
    out = {s: dataclasses.asdict(getattr(cfg, s)) for s in _SECTIONS}
    for name, obj in cfg.objectives.items():
        out[name] = dataclasses.asdict(obj)
    return out


def from_dict(d: dict) -> Config:
    """Rebuild a config from its saved dictionary (validated like a YAML file)."""
    cfg = _merge(schema(), OmegaConf.create(d), "saved config")
    return to_config(cfg)


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def replace(cfg: Config, **sections: Any) -> Config:
    """``replace(cfg, train={"epochs": 2})``: a copy with some fields of some sections changed."""
    d = to_dict(cfg)
    for sec, vals in sections.items():
        d[sec] = {**d[sec], **vals}
    return from_dict(d)
