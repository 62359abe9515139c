"""Data-parallel training of one large candidate with ``torchrun`` (DDP; gloo on CPU, NCCL on CUDA).

    torchrun --nproc-per-node 2 -m unnas.distributed --generator resnet --params width=64 \\
        --pretext rotation --data cifar10 --out runs/big train.epochs=30

Conventions, chosen so that W processes train like one process at the same *global* batch:

* ``train.batch_size`` is the global batch; each rank takes its contiguous ``1/W`` share of every
  global batch of the one shared epoch order (all ranks draw the same permutation from the
  ``seed``). The learning-rate schedule counts global steps, exactly as :func:`unnas.engine.train`.
* Gradients are averaged by :class:`~torch.nn.parallel.DistributedDataParallel`; BatchNorm layers
  are replaced by :class:`GlobalBatchNorm`, which normalizes with the statistics of the whole
  global batch (a differentiable all-reduce; PyTorch's SyncBatchNorm needs a GPU). So the
  gradient is the one-process gradient of the global batch, up to float summation order.
* Augmentation randomness: with one process the single generator of the engine is used (the
  result equals :func:`unnas.engine.train` bit for bit); with W > 1 each rank draws its own
  augmentations from ``(seed, rank)``, so runs agree with one process in distribution, and
  exactly when the objective's training input is deterministic.
* Rank 0 writes checkpoints (every rank's RNG states included) and, at the end, evaluates and
  writes ``result.json`` and ``model.pt`` into ``--out``. Resuming needs the same world size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
from torch import nn

from unnas.cli import ArgumentParser
from unnas.data.core import Split
from unnas.engine import (
    JobTimeout,
    TrainResult,
    _checkpoints,
    apply_runtime,
    budget,
    latest_checkpoint,
    make_optimizer,
    precise_bn,
    random_order,
    save_atomic,
    to_channels_last,
)
from unnas.errors import DivergedError, UserError


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without an initialized process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of every rank (CPU or GPU, any backend).

    Training: mean and biased variance over all ranks' samples (two differentiable all-reduces),
    running statistics updated with the unbiased variance like :class:`torch.nn.BatchNorm2d`.
    Evaluation, or a single process: plain batch norm.
    """

    synchronized = True  # False: local statistics (precise BN, where every rank sees the same samples)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input, got {x.dim()}D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, w = world()
        if not self.training or w == 1 or not self.synchronized:
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        n_local = x.numel() // x.shape[1]
        count = torch.tensor([float(n_local)], dtype=x.dtype, device=x.device)
        total = all_reduce(torch.cat([x.sum(dims), count]))
        n = total[-1]
        mean = total[:-1] / n
        xc = x - mean.view(shape)
        var = all_reduce(xc.pow(2).sum(dims)) / n
        y = xc * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * (n / (n - 1)), alpha=m)
        return y


def global_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm layer (keeping its parameters and statistics) by :class:`GlobalBatchNorm`."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(module, name, new.to(next(child.buffers(), torch.zeros(())).device))
        else:
            global_batchnorm(child)
    return module


def shard_order(order: torch.Tensor, global_batch: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's indices, in step order: its contiguous ``1/W`` share of each full global batch."""
    per = global_batch // world_size
    n = (order.shape[0] // global_batch) * global_batch
    return order[:n].view(-1, world_size, per)[:, rank].reshape(-1)


def train_distributed(objective: nn.Module, split: Split, cfg, *, seed: int = 0,
                      device: str | torch.device = "cpu", checkpoint_dir: str | Path | None = None,
                      config: dict | None = None, log: Callable[[str], None] | None = None) -> TrainResult:
    """Train like :func:`unnas.engine.train` on every rank of the process group (see module doc)."""
    rank, w = world()
    if cfg.batch_size <= 0 or cfg.batch_size % w:
        raise UserError("train.batch_size", cfg.batch_size, f"a positive multiple of the {w} processes")
    device = torch.device(device)
    apply_runtime(cfg)
    per = cfg.batch_size // w
    uses_labels = bool(getattr(objective, "uses_labels", False))
    if w > 1:
        global_batchnorm(objective)
    objective.to(device)
    if cfg.channels_last and device.type == "cpu":
        to_channels_last(objective)
    spe, total, epochs = budget(len(split), cfg)
    model = objective
    if w > 1:
        model = nn.parallel.DistributedDataParallel(objective, broadcast_buffers=False,
                                                    device_ids=[device.index] if device.type == "cuda" else None)
    params = [p for p in objective.parameters() if p.requires_grad]
    opt, sched = make_optimizer(params, cfg, total, spe)
    order_gen = torch.Generator().manual_seed(int(seed))
    aug_gen = order_gen if w == 1 else torch.Generator().manual_seed(int(seed) * 1_000_003 + 7919 * (rank + 1))
    result = TrainResult()
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir else None
    start_epoch, step = 0, 0
    state = latest_checkpoint(ckpt_dir, log) if ckpt_dir is not None and ckpt_dir.is_dir() else None
    if state is not None:
        if int(state.get("world_size", 1)) != w:
            raise UserError("--nproc-per-node", w, str(state.get("world_size")),
                            message="the checkpoint was written by another number of processes")
        objective.load_state_dict(state["objective"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        order_gen.set_state(state["generator"])
        mine = state["ranks"][rank]
        if w > 1:
            aug_gen.set_state(mine["aug"])
        torch.set_rng_state(mine["torch_rng"])
        start_epoch, step = int(state["epoch"]), int(state["step"])
        result.history = list(state["history"])
        result.resumed_from_epoch = start_epoch
    t0 = time.perf_counter()
    for epoch in range(start_epoch, epochs):
        objective.train()
        order = shard_order(random_order(split.labels, epoch, order_gen), cfg.batch_size, rank, w)
        n_steps = min(spe, total - step)
        sums = torch.zeros(3, dtype=torch.float64)
        te = time.perf_counter()
        for i in range(n_steps):
            b = order[i * per:(i + 1) * per]
            images = split.images[b].to(device, non_blocking=True)
            labels = split.labels[b].to(device) if uses_labels else None
            out = model(images, labels, aug_gen)
            loss = out["loss"]
            bad = torch.tensor([0.0 if torch.isfinite(loss.detach()) else 1.0])
            if w > 1:
                dist.all_reduce(bad)
            if bad.item():
                raise DivergedError(step, float(loss.detach()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            objective.after_step()
            step += 1
            sums += torch.tensor([float(loss.detach()), float(out["acc"]), 1.0], dtype=torch.float64)
            if cfg.time_limit and time.perf_counter() - t0 > cfg.time_limit:
                raise JobTimeout(f"time limit of {cfg.time_limit:g} s reached at step {step}")
        if w > 1:
            dist.all_reduce(sums)
        result.history.append({"epoch": epoch + 1, "step": step, "loss": float(sums[0] / max(sums[2], 1)),
                               "acc": float(sums[1] / max(sums[2], 1)), "lr": opt.param_groups[0]["lr"],
                               "seconds": time.perf_counter() - te})
        if ckpt_dir is not None and cfg.checkpoint:
            mine = {"aug": aug_gen.get_state(), "torch_rng": torch.get_rng_state()}
            ranks = [None] * w
            if w > 1:
                dist.all_gather_object(ranks, mine)
            else:
                ranks = [mine]
            if rank == 0:
                save_atomic({"objective": objective.state_dict(), "optimizer": opt.state_dict(),
                             "scheduler": sched.state_dict(), "generator": order_gen.get_state(), "ranks": ranks,
                             "world_size": w, "epoch": epoch + 1, "step": step, "history": result.history,
                             "config": config or {}}, ckpt_dir / f"epoch_{epoch + 1}.pt")
                for old in _checkpoints(ckpt_dir)[2:]:
                    old.unlink(missing_ok=True)
            if w > 1:
                dist.barrier()
    if cfg.precise_bn and epochs > 0:
        # every rank recomputes BN statistics locally on the same samples and augmentations (the
        # shared order generator), exactly as one process does, so the ranks stay identical
        gbn = [m for m in objective.modules() if isinstance(m, GlobalBatchNorm)]
        for m in gbn:
            m.synchronized = False
        precise_bn(objective, split, cfg.precise_bn, cfg.batch_size, order_gen, device)
        for m in gbn:
            m.synchronized = True
    objective.eval()
    result.steps = step
    result.seconds = time.perf_counter() - t0
    return result


# ------------------------------------------------------------------ command line (under torchrun)
def parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="torchrun --nproc-per-node N -m unnas.distributed",
                       description="Train and evaluate one candidate with data-parallel processes.")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides")
    p.add_argument("--generator", required=True)
    p.add_argument("--params", nargs="*", default=[], metavar="K=V", help="generator parameters (YAML values)")
    p.add_argument("--arch-seed", type=int, default=0, help="the candidate's seed (graph wiring)")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("--pretext", default="rotation", help="objective")
    p.add_argument("--data", help="dataset name")
    p.add_argument("--config", help="YAML config file")
    p.add_argument("--out", required=True, help="output folder (checkpoints, result.json, model.pt)")
    p.add_argument("--device", default="cpu", help="cpu | cuda (one GPU per process: cuda:LOCAL_RANK)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _main(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(args) -> int:

    from unnas import config as config_mod
    from unnas.objectives.base import DataInfo, build_objective, objective_class
    from unnas.runner import _metrics, dataset_for
    from unnas.spec import ArchSpec, build

    base: dict = {"run": {"pretext": args.pretext}}
    if args.data:
        base["data"] = {"name": args.data}
    cfg = config_mod.load(args.config, args.overrides, base=base)
    from unnas.population import parse_params

    params = parse_params(args.params)
    out = Path(args.out)
    if args.device not in ("cpu", "cuda"):
        raise UserError("--device", args.device, "cpu, cuda")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}" if args.device == "cuda" else "cpu")
    if "RANK" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    rank, w = world()
    try:
        data = dataset_for(cfg)
        cls = objective_class(args.pretext)
        spec = ArchSpec(args.generator, params, args.arch_seed)
        torch.manual_seed(args.seed)
        objective = build_objective(args.pretext, build(spec, cls.input_channels(data.channels)), DataInfo.of(data),
                                    cfg.objectives.get(args.pretext))
        res = train_distributed(objective, data.train, cfg.train, seed=args.seed, device=device,
                                checkpoint_dir=out / "checkpoints", config=config_mod.to_dict(cfg),
                                log=lambda m: print(f"[rank {rank}] {m}", file=sys.stderr))
        if rank == 0:
            metrics = {**_metrics(objective, data, cfg, device), "steps": res.steps, "world_size": w,
                       "train_loss": res.history[-1]["loss"] if res.history else float("nan"),
                       "seconds": res.seconds}
            save_atomic({"backbone": objective.backbone.state_dict(), "spec": spec.to_json(),
                         "objective": args.pretext, "seed": args.seed, "config": config_mod.to_dict(cfg)},
                        out / "model.pt")
            (out / "result.json").write_text(json.dumps({"spec": json.loads(spec.to_json()), "objective": args.pretext,
                                                         "seed": args.seed, "metrics": metrics}, indent=1))
            print(json.dumps(metrics))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
