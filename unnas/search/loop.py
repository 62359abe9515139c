"""The one supernet-search loop: architecture and weight steps on separate halves of the data.

``run_supernet_search(method, space, objective, data, cfg)`` builds the method's supernet for
the space's generator, wraps it in the objective (any registered objective: the supernet is a
Backbone), splits the training images at random into a weights part and an architecture part
(``options.arch_fraction``; labels are never read to split), and for ``cfg.train`` epochs runs,
step by step, one architecture step (Adam on the architecture parameters, on a batch of the
architecture part; skipped during ``options.warmup_epochs``) and one weight step (the engine's SGD
with cosine schedule and warm-up, gradient clipping at ``train.grad_clip``, on a batch of the
weights part). Randomness (splits, epoch orders, augmentations, Gumbel noise) comes from
generators seeded with ``seed``; weight and architecture initialisation from ``seed`` too.

Every epoch ends with an atomic checkpoint (:func:`unnas.engine.save_atomic`: supernet and heads,
both optimizers, the schedule, RNG states, history), so a rerun resumes from the newest readable one
and ends bit-identical to an uninterrupted search (deterministic mode). The result is the derived
network as an ArchSpec with its complexity, the per-epoch history (losses, architecture
probabilities, the network derived at that epoch, method extras such as the temperature or the
expected FLOPs) and the timings.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from unnas.data.core import Data, Split
from unnas.engine import JobTimeout, _checkpoints, apply_runtime, budget, latest_checkpoint, make_optimizer, save_atomic
from unnas.errors import DivergedError, UserError
from unnas.generators.complexity import complexity
from unnas.memory_format import to_channels_last
from unnas.objectives.base import DataInfo, build_objective, objective_class
from unnas.registry import SEARCH_METHODS
from unnas.search.base import ArchStep, SearchMethod, SearchResult, Supernet, run_with
from unnas.strategies.base import SearchSpace

Progress = Callable[[int, int, dict], None]
KEEP_CHECKPOINTS = 2


def make_method(name: str, options: Any = None) -> SearchMethod:
    """The registered search method ``name`` with ``options`` (None: the defaults), checked."""
    cls = SEARCH_METHODS.get(name)
    if options is None:
        options = SEARCH_METHODS.meta(name)["config"]()
    method = cls(options)
    method.check()
    return method


def split_for_search(n: int, arch_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(weights part, architecture part)``: sorted indices of a seeded random split of ``n``
    training images, ``round(arch_fraction * n)`` (at least 1, at most ``n - 1``) for the architecture."""
    if n < 2:
        raise UserError("data", n, "at least 2 training images", message="too few images to split for a search")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed) + 104729))
    k = min(n - 1, max(1, int(round(arch_fraction * n))))
    return perm[k:].sort().values, perm[:k].sort().values


def _order(n: int, needed: int, generator: torch.Generator) -> torch.Tensor:
    """At least ``needed`` indices into ``n`` images: fresh permutations, concatenated."""
    perms = [torch.randperm(n, generator=generator) for _ in range(max(1, -(-needed // n)))]
    return torch.cat(perms)


def prune_checkpoints(ckpt_dir: Path, keep: int = KEEP_CHECKPOINTS) -> None:
    for old in _checkpoints(ckpt_dir)[keep:]:  # newest first
        old.unlink(missing_ok=True)


class _Batches:
    """Forward passes of the objective on batches of one part of the training split."""

    def __init__(self, objective: nn.Module, split: Split, method: SearchMethod, device: torch.device):
        self.objective, self.split, self.method, self.device = objective, split, method, device
        self.uses_labels = bool(getattr(objective, "uses_labels", False))

    def forward(self, idx: torch.Tensor) -> Callable[[dict | None, torch.Generator | None], dict]:
        images = self.split.images[idx].to(self.device, non_blocking=True)
        labels = self.split.labels[idx].to(self.device) if self.uses_labels else None

        def run(weights: dict | None, generator: torch.Generator | None) -> dict:
            self.method.before_forward(self.objective, generator)
            return run_with(self.objective, weights, images, labels, generator)

        return run


def _finite(loss: torch.Tensor, step: int) -> None:
    if not torch.isfinite(loss.detach()):
        raise DivergedError(step, float(loss.detach()))


def run_supernet_search(method: str, space: SearchSpace, objective: str, data: Data, cfg, *,
                        options: Any = None, seed: int = 0, checkpoint_dir: str | Path | None = None,
                        progress: Progress | None = None, device: str | torch.device = "cpu",
                        config: dict | None = None, log: Callable[[str], None] | None = None,
                        on_epoch: Callable[[dict], None] | None = None) -> SearchResult:
    """Run one supernet search (see the module docstring); ``cfg`` is a :class:`~unnas.config.Config`
    (its ``train`` section drives the weights and the budget, its objective sections the objective),
    ``options`` the method's options dataclass, ``config`` what is saved in every checkpoint;
    ``on_epoch(record)`` is called with each epoch's history record once its checkpoint is written."""
    m = make_method(method, options)
    device = torch.device(device) if not isinstance(device, torch.device) else device
    tcfg = cfg.train
    if tcfg.batch_size <= 0:
        raise UserError("train.batch_size", tcfg.batch_size, "a positive integer")
    if tcfg.epochs < 1 or tcfg.steps:
        raise UserError("train.epochs", tcfg.epochs, "an integer >= 1 (a search's budget is in epochs; train.steps=0)")
    cls = objective_class(objective)
    info = DataInfo.of(data)
    obj_options = cfg.objectives.get(objective)
    cls.check_data(info, obj_options)
    cls.check_run(obj_options, tcfg, info)
    apply_runtime(tcfg)
    torch.manual_seed(int(seed))
    in_ch = cls.input_channels(data.channels)
    supernet: Supernet = m.build(space.generator, space.base, in_ch, seed)
    obj = build_objective(objective, supernet, info, obj_options)
    obj.to(device)
    if tcfg.channels_last and device.type == "cpu":
        to_channels_last(obj)
    arch_params = supernet.arch_parameters()
    arch_ids = {id(p) for p in arch_params}
    named = [(n, p) for n, p in obj.named_parameters() if p.requires_grad and id(p) not in arch_ids]
    weight_names, weight_params = [n for n, _ in named], [p for _, p in named]

    w_idx, a_idx = split_for_search(len(data.train), m.options.arch_fraction, seed)
    w_split, a_split = data.train.subset(w_idx), data.train.subset(a_idx)
    spe, total, epochs = budget(len(w_split), tcfg)
    w_opt, w_sched = make_optimizer(weight_params, tcfg, total, spe)
    a_opt = torch.optim.Adam(arch_params, lr=m.options.arch_lr, betas=tuple(m.options.arch_betas),
                             weight_decay=m.options.arch_weight_decay)
    gen = torch.Generator().manual_seed(int(seed))
    image_size = data.image_size
    weights_part, arch_part = _Batches(obj, w_split, m, device), _Batches(obj, a_split, m, device)

    result = SearchResult(method, objective, supernet.derive(), {})
    parts = {"objective": obj, "weight_optimizer": w_opt, "scheduler": w_sched, "arch_optimizer": a_opt}
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else None
    start, step = 0, 0
    if ckpt_dir is not None and ckpt_dir.is_dir():
        state = latest_checkpoint(ckpt_dir, log)
        if state is not None:
            for key, part in parts.items():
                part.load_state_dict(state[key])
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            start = result.resumed_from_epoch = int(state["epoch"])
            step, result.history = int(state["step"]), list(state["history"])
    t0, c0 = time.perf_counter(), time.process_time()
    cpu_before = result.history[-1]["cpu_seconds"] if result.history else 0.0
    for epoch in range(start, epochs):
        obj.train()
        extras = m.epoch_start(obj, epoch)
        n_steps = min(spe, total - step)
        bsz = tcfg.batch_size
        w_order = torch.randperm(len(w_split), generator=gen)
        a_order = _order(len(a_split), n_steps * bsz, gen)
        search_arch = epoch >= m.options.warmup_epochs
        sums = {"weight_loss": 0.0, "weight_acc": 0.0, "arch_loss": 0.0, "arch_search_loss": 0.0, "arch_acc": 0.0}
        te, ce = time.perf_counter(), time.process_time()
        for i in range(n_steps):
            if search_arch:
                a_step = ArchStep(obj, arch_params, weight_names, weight_params, w_opt,
                                  arch_part.forward(a_order[i * bsz:(i + 1) * bsz]),
                                  weights_part.forward(w_order[i * bsz:(i + 1) * bsz]),
                                  lambda out: m.arch_loss(supernet, out["loss"], image_size), gen)
                out, grads = m.arch_gradients(a_step)
                _finite(out["search_loss"], step)
                for p, g in zip(arch_params, grads):
                    p.grad = g
                a_opt.step()
                sums["arch_loss"] += float(out["loss"].detach())
                sums["arch_search_loss"] += float(out["search_loss"].detach())
                sums["arch_acc"] += float(out["acc"])
            out = weights_part.forward(w_order[i * bsz:(i + 1) * bsz])(None, gen)
            loss = out["loss"]
            _finite(loss, step)
            grads = torch.autograd.grad(loss, weight_params, allow_unused=True)
            for p, g in zip(weight_params, grads):
                p.grad = g
            if tcfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(weight_params, tcfg.grad_clip)
            w_opt.step()
            w_sched.step()
            obj.after_step()
            step += 1
            sums["weight_loss"] += float(loss.detach())
            sums["weight_acc"] += float(out["acc"])
            if progress is not None:
                progress(step, total, {"epoch": epoch + 1, "loss": float(loss.detach())})
            if tcfg.time_limit and time.perf_counter() - t0 > tcfg.time_limit:
                raise JobTimeout(f"time limit of {tcfg.time_limit:g} s reached at step {step}")
        derived = supernet.derive()
        record = {"epoch": epoch + 1, "step": step, "lr": w_opt.param_groups[0]["lr"],
                  **{k: v / max(n_steps, 1) for k, v in sums.items()},
                  "arch_trained": search_arch, **extras, **m.epoch_end(supernet, image_size),
                  "probabilities": supernet.probabilities(), "derived": derived.params, "arch_id": derived.arch_id,
                  "seconds": time.perf_counter() - te, "epoch_cpu_seconds": time.process_time() - ce,
                  "cpu_seconds": cpu_before + time.process_time() - c0}
        if not search_arch:
            record["arch_loss"] = record["arch_search_loss"] = record["arch_acc"] = None
        result.history.append(record)
        if ckpt_dir is not None and tcfg.checkpoint:
            state = {**{key: part.state_dict() for key, part in parts.items()}, "generator": gen.get_state(),
                     "torch_rng": torch.get_rng_state(), "epoch": epoch + 1, "step": step,
                     "history": result.history, "config": config or {}}
            save_atomic(state, ckpt_dir / f"epoch_{epoch + 1}.pt")
            prune_checkpoints(ckpt_dir)
        if on_epoch is not None:
            on_epoch(record)
    obj.eval()
    result.spec = supernet.derive()
    result.complexity = complexity(result.spec, in_ch, image_size[0])
    result.probabilities = supernet.probabilities()
    result.steps = step
    result.seconds = time.perf_counter() - t0
    result.cpu_seconds = result.history[-1]["cpu_seconds"] if result.history else 0.0
    result.options = asdict(m.options)
    return result
