"""One training loop for every objective, with checkpoint/resume and precise BN.

``train`` runs SGD (Nesterov momentum, weight decay) under a cosine schedule with linear
warm-up for a budget in epochs or steps. Randomness (epoch order, augmentations) comes from one
``torch.Generator`` seeded with ``seed``; weight initialisation is the caller's business.
At the end of every epoch the full state (objective with its heads and buffers, optimizer,
scheduler, the AMP gradient scaler, the generator, CPU and CUDA RNG states of every process,
history, config) is written atomically, so a resumed run ends bit-identical to an uninterrupted
one in deterministic mode, on CPU; on CUDA, as far as every op it runs has a deterministic kernel.
The forward pass runs under the autocast of ``cfg.precision`` (:mod:`unnas.precision`: bfloat16
on a CPU with bfloat16 arithmetic, float16 with a gradient scaler on CUDA); weights, optimizer
state and BN statistics stay float32.

Data-parallel training runs the same loop through a :class:`~unnas.replicas.Replicas` hook
(``replicas=``; :mod:`unnas.distributed`).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from unnas.data.core import Split
from unnas.errors import DivergedError, UserError
from unnas.memory_format import to_channels_last
from unnas.precision import autocast, resolve_precision
from unnas.replicas import Replicas

Sampler = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
Progress = Callable[[int, int, dict], None]


class JobTimeout(RuntimeError):
    """The job exceeded its time limit."""


@dataclass
class TrainResult:
    # one dict per epoch: its mean loss and accuracy, lr, seconds and ``losses`` (every step's loss,
    # averaged over the processes of data-parallel training)
    history: list[dict] = field(default_factory=list)
    steps: int = 0
    resumed_from_epoch: int = 0
    seconds: float = 0.0
    precision: str = "float32"  # autocast dtype of the forward passes (unnas.precision)

    @property
    def step_losses(self) -> list[list[float]]:
        """Per epoch, the loss of each of its steps (epochs from a checkpoint included)."""
        return [list(h.get("losses", [])) for h in self.history]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU. Validates explicit names."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError("--device", name, "auto, cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device", name, "auto or cpu on this machine", message="CUDA is not available")
    if dev.type not in ("cpu", "cuda"):
        raise UserError("--device", name, "auto, cpu, cuda, cuda:N")
    return dev


def random_order(labels: torch.Tensor, epoch: int, generator: torch.Generator) -> torch.Tensor:
    """Instance-balanced sampling: a fresh permutation every epoch."""
    return torch.randperm(labels.shape[0], generator=generator)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Full batches only (BN needs them); a dataset smaller than a batch gives one batch."""
    return max(1, n // batch_size)


def cosine_lambda(total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup > 0 and step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return f


# ------------------------------------------------------------------ checkpoints
def save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``: no code from the file can run)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every failure means "not a usable checkpoint"
        raise UserError("checkpoint", str(path), "a checkpoint written by unnas",
                        message=f"refused or unreadable ({e.__class__.__name__}: {str(e).splitlines()[0][:120]})") from None


def _checkpoints(ckpt_dir: Path) -> list[Path]:
    return sorted(ckpt_dir.glob("epoch_*.pt"), key=lambda p: int(p.stem.split("_")[1]), reverse=True)


def latest_checkpoint(ckpt_dir: Path, log: Callable[[str], None] | None = None) -> dict | None:
    """Newest readable epoch checkpoint; unreadable ones are reported and skipped."""
    for p in _checkpoints(ckpt_dir):
        try:
            return load_checkpoint(p)
        except UserError as e:
            if log:
                log(f"skipping checkpoint: {e}")
    return None


def rng_state(generator: torch.Generator, augment: torch.Generator, device: torch.device) -> dict:
    """This process's random state: the engine's generator, the augmentation generator (when it
    is another one), the CPU RNG and, on CUDA, the device's RNG."""
    state = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    if augment is not generator:
        state["aug"] = augment.get_state()
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, generator: torch.Generator, augment: torch.Generator, device: torch.device) -> None:
    """Restore what :func:`rng_state` saved."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    if augment is not generator:
        augment.set_state(state["aug"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], device)


def training_state(parts: dict, scaler, rngs: list[dict]) -> dict:
    """A checkpoint: ``parts`` (state dicts and counters), the AMP scaler's state, the random state
    of every process (``ranks``, in rank order; the first one also at the top level)."""
    return {**parts, "scaler": scaler.state_dict() if scaler is not None else None, **rngs[0],
            "ranks": rngs, "world_size": len(rngs)}


def restore_training_state(state: dict, scaler, rank: int, world: int, generator: torch.Generator,
                           augment: torch.Generator, device: torch.device) -> None:
    """Restore the scaler and this process's random state from :func:`training_state`'s checkpoint."""
    saved_world = int(state.get("world_size", 1))
    if saved_world != world:
        raise UserError("processes", world, str(saved_world),
                        message="the checkpoint was written by another number of processes")
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    set_rng_state({**state, **state["ranks"][rank]} if "ranks" in state else state, generator, augment, device)


# ------------------------------------------------------------------ BN
def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def precise_bn(objective: nn.Module, split: Split, num_samples: int, batch_size: int,
               generator: torch.Generator, device: torch.device) -> None:
    """Recompute BN running statistics from ``num_samples`` training inputs (as the backbone sees
    them in training), instead of the EMA accumulated during training.

    Batches are weighted by their number of samples (the last one may be short): the running mean
    is the mean over all ``num_samples`` inputs, the running variance the sample-weighted average
    of the batches' unbiased variances (what BN normalizes with in training). A last batch of one
    sample is left out."""
    bns = _bn_layers(objective.backbone)
    if not bns or num_samples <= 0:
        return
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
    was = objective.training
    objective.train()
    n = min(num_samples, len(split))
    if n % batch_size == 1 and n > 1:
        n -= 1  # BN cannot normalize a batch of one sample
    idx = torch.randperm(len(split), generator=generator)[:n]
    for s in range(0, n, batch_size):
        b = idx[s:s + batch_size]
        for m in bns:  # running <- running + (batch - running) * n_b / (samples so far)
            m.momentum = len(b) / (s + len(b))
        x = objective.train_input(split.images[b].to(device), generator)
        objective.backbone.pooled(x)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    objective.train(was)


# ------------------------------------------------------------------ training
def apply_runtime(cfg) -> None:
    """Intra-op threads and deterministic algorithms as ``cfg`` asks."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        # cuBLAS is reproducible only with a fixed workspace, set before its first call
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


def budget(n: int, cfg) -> tuple[int, int, int]:
    """``(steps per epoch, total steps, epochs)`` for ``n`` training images under ``cfg``."""
    spe = steps_per_epoch(n, cfg.batch_size)
    total = cfg.steps if cfg.steps > 0 else cfg.epochs * spe
    return spe, total, (math.ceil(total / spe) if total else 0)


def make_optimizer(params: list, cfg, total: int, spe: int):
    """SGD (Nesterov when ``cfg.nesterov``) with a per-step cosine schedule and linear warm-up."""
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                          nesterov=cfg.nesterov and cfg.momentum > 0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_lambda(total, int(round(cfg.warmup_epochs * spe))))
    return opt, sched


def train(objective: nn.Module, split: Split, cfg, *, seed: int = 0, device: str | torch.device = "cpu",
          checkpoint_dir: str | Path | None = None, progress: Progress | None = None,
          sampler: Sampler | None = None, config: dict | None = None,
          log: Callable[[str], None] | None = None, replicas: Replicas | None = None,
          stop_epoch: int = 0) -> TrainResult:
    """Train ``objective`` on ``split`` following ``cfg`` (a :class:`~unnas.config.TrainConfig`),
    in this process or as one of ``replicas`` (data-parallel processes, :mod:`unnas.distributed`).

    ``stop_epoch > 0`` stops after that epoch of the schedule (the learning rate follows the
    whole schedule; a later call with a larger ``stop_epoch`` and the same checkpoint folder
    continues from the checkpoint, exactly as if the run had never stopped)."""
    if cfg.epochs < 0 or cfg.steps < 0:
        raise UserError("train.epochs", cfg.epochs, "a non-negative number of epochs (or train.steps > 0)")
    if cfg.batch_size <= 0:
        raise UserError("train.batch_size", cfg.batch_size, "a positive integer")
    rep = replicas if replicas is not None else Replicas()
    rep.check(cfg.batch_size, len(split))
    device = torch.device(device) if not isinstance(device, torch.device) else device
    apply_runtime(cfg)
    sampler = sampler or random_order
    uses_labels = bool(getattr(objective, "uses_labels", False))
    objective.to(device)
    if cfg.channels_last and device.type == "cpu":
        to_channels_last(objective)
    model = rep.wrap(objective, device)
    spe, total, epochs = budget(len(split), cfg)
    per = cfg.batch_size // rep.world  # this process's share of every batch
    params = [p for p in objective.parameters() if p.requires_grad]
    opt, sched = make_optimizer(params, cfg, total, spe)
    gen = torch.Generator().manual_seed(int(seed))
    aug = rep.augmentation_generator(gen, int(seed))
    precision = resolve_precision(cfg, device)
    scaler = torch.amp.GradScaler("cuda") if precision == "float16" else None
    result = TrainResult(precision=precision)
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else None
    start_epoch, step = 0, 0
    if ckpt_dir is not None and ckpt_dir.is_dir():
        state = latest_checkpoint(ckpt_dir, log)
        if state is not None:
            objective.load_state_dict(state["objective"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            restore_training_state(state, scaler, rep.rank, rep.world, gen, aug, device)
            start_epoch, step = int(state["epoch"]), int(state["step"])
            result.history = list(state["history"])
            result.resumed_from_epoch = start_epoch
    t0 = time.perf_counter()
    labels_all = split.labels
    last = min(epochs, stop_epoch) if stop_epoch > 0 else epochs
    for epoch in range(start_epoch, last):
        objective.train()
        order = rep.shard(sampler(labels_all, epoch, gen), cfg.batch_size)
        n_steps = min(spe, total - step, max(1, len(order) // per))
        loss_sum, acc_sum, cnt = 0.0, 0.0, 0
        losses: list[float] = []  # this epoch's per-step losses
        te = time.perf_counter()
        for i in range(n_steps):
            b = order[i * per:(i + 1) * per]
            images = split.images[b].to(device, non_blocking=True)
            labels = labels_all[b].to(device) if uses_labels else None
            with autocast(objective, device, precision):
                out = model(images, labels, aug)
            loss = out["loss"]
            if rep.any(not torch.isfinite(loss.detach())):
                raise DivergedError(step, float(loss.detach()))
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                if cfg.grad_clip > 0:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
            sched.step()
            objective.after_step()
            step += 1
            losses.append(float(loss.detach()))
            loss_sum += losses[-1]
            acc_sum += float(out["acc"])
            cnt += 1
            if progress is not None:
                progress(step, total, {"epoch": epoch + 1, "loss": float(loss.detach())})
            if cfg.time_limit and rep.any(time.perf_counter() - t0 > cfg.time_limit):
                raise JobTimeout(f"time limit of {cfg.time_limit:g} s reached at step {step}")
        if rep.world > 1:  # the epoch's means over every process's steps
            loss_sum, acc_sum, cnt = rep.sum(torch.tensor([loss_sum, acc_sum, cnt], dtype=torch.float64)).tolist()
            losses = (rep.sum(torch.tensor(losses, dtype=torch.float64)) / rep.world).tolist()
        result.history.append({"epoch": epoch + 1, "step": step, "loss": loss_sum / max(cnt, 1),
                               "acc": acc_sum / max(cnt, 1), "lr": opt.param_groups[0]["lr"],
                               "seconds": time.perf_counter() - te, "losses": losses})
        if ckpt_dir is not None and cfg.checkpoint:
            rngs = rep.gather(rng_state(gen, aug, device))
            if rep.rank == 0:
                state = training_state({"objective": objective.state_dict(), "optimizer": opt.state_dict(),
                                        "scheduler": sched.state_dict(), "epoch": epoch + 1, "step": step,
                                        "history": result.history, "config": config or {}}, scaler, rngs)
                save_atomic(state, ckpt_dir / f"epoch_{epoch + 1}.pt")
                for old in _checkpoints(ckpt_dir)[2:]:  # keep the two newest
                    old.unlink(missing_ok=True)
            rep.barrier()
    rep.finish(objective)
    if cfg.precise_bn and epochs > 0:  # also after resuming from the last epoch: checkpoints precede it
        precise_bn(objective, split, cfg.precise_bn, cfg.batch_size, gen, device)
    objective.eval()
    result.steps = step
    result.seconds = time.perf_counter() - t0
    return result


@torch.no_grad()
def evaluate_objective(objective: nn.Module, split: Split, batch_size: int = 256, seed: int = 0,
                       device: str | torch.device = "cpu") -> dict[str, float]:
    """The objective's own loss and accuracy on ``split`` (eval mode, seeded randomness)."""
    objective.eval()
    # dense objectives (colorization: one prediction per pixel) cap the batch to bound memory
    batch_size = min(batch_size, int(getattr(objective, "max_eval_batch", batch_size)))
    gen = torch.Generator().manual_seed(int(seed))
    uses_labels = bool(getattr(objective, "uses_labels", False))
    loss_sum, acc_sum, n_sum = 0.0, 0.0, 0
    for s in range(0, len(split), batch_size):
        images = split.images[s:s + batch_size].to(device)
        labels = split.labels[s:s + batch_size].to(device) if uses_labels else None
        out = objective(images, labels, gen)
        n = int(out["n"])
        loss_sum += float(out["loss"]) * n
        acc_sum += float(out["acc"]) * n
        n_sum += n
    return {"loss": loss_sum / max(n_sum, 1), "acc": acc_sum / max(n_sum, 1), "n": n_sum}
