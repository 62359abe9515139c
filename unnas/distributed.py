"""Data-parallel training of one large candidate with ``torchrun`` (DDP; gloo on CPU, NCCL on CUDA).

    torchrun --nproc-per-node 2 -m unnas.distributed --generator resnet --params width=64 \\
        --pretext rotation --data cifar10 --out runs/big train.epochs=30

The training loop is the engine's (:func:`unnas.engine.train`); :class:`DataParallel` is its
:class:`~unnas.replicas.Replicas` hook. Conventions, chosen so that W processes train like one
process at the same *global* batch:

* ``train.batch_size`` is the global batch; each rank takes its contiguous ``1/W`` share of every
  global batch of the one shared epoch order (all ranks draw the same order from the ``seed``,
  with the run's sampler). The learning-rate schedule counts global steps.
* Gradients are averaged by :class:`~torch.nn.parallel.DistributedDataParallel`. For objectives
  with ``sync_batchnorm`` (all but MoCo) BatchNorm layers are replaced by
  :class:`GlobalBatchNorm`, which normalizes with the statistics of the whole global batch (a
  differentiable all-reduce; PyTorch's SyncBatchNorm needs a GPU), so the gradient is the
  one-process gradient of the global batch, up to float summation order. MoCo keeps plain BN:
  each rank normalizes its own sub-batch (with split BN inside it) and the keys are shuffled
  across ranks (shuffle BN, as the reference), so a key is never normalized with its query.
* Augmentation randomness: with one process the single generator of the engine is used (the
  result equals :func:`unnas.engine.train` bit for bit); with W > 1 each rank draws its own
  augmentations from ``(seed, rank)``, so runs agree with one process in distribution, and
  exactly when the objective's training input is deterministic.
* A diverged loss or the time limit on any rank stops every rank at the same step. Rank 0 writes
  checkpoints (every rank's random state included; resuming needs the same world size). After
  training every rank works on its own again (BN local, no collective call): precise BN runs on
  every rank with the same samples, and rank 0 evaluates and writes ``result.json`` and
  ``model.pt`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from unnas.cli import ArgumentParser
from unnas.data.core import Split
from unnas.engine import TrainResult, save_atomic, train
from unnas.errors import UserError
from unnas.replicas import Replicas


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without an initialized process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of every rank (CPU or GPU, any backend).

    Training with ``synchronized`` (set while :class:`DataParallel` trains): mean and biased
    variance over all ranks' samples (two differentiable all-reduces), running statistics
    updated with the unbiased variance like :class:`torch.nn.BatchNorm2d`. Evaluation, a single
    process, or not ``synchronized``: plain batch norm of this rank's samples.
    """

    synchronized = False

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
    """Replace every BatchNorm layer (keeping its parameters, statistics, device, dtype and which
    parameters train) by :class:`GlobalBatchNorm`."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            new = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats)
            like = next((t for t in (*child.parameters(), *child.buffers()) if t.is_floating_point()), None)
            if like is not None:
                new.to(device=like.device, dtype=like.dtype)
            new.load_state_dict(child.state_dict())
            for p_new, p_old in zip(new.parameters(), child.parameters()):
                p_new.requires_grad_(p_old.requires_grad)
            new.train(child.training)
            setattr(module, name, new)
        else:
            global_batchnorm(child)
    return module


def shard_order(order: torch.Tensor, global_batch: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's indices, in step order: its contiguous ``1/W`` share of each full global batch."""
    per = global_batch // world_size
    n = (order.shape[0] // global_batch) * global_batch
    return order[:n].view(-1, world_size, per)[:, rank].reshape(-1)


class DataParallel(Replicas):
    """The engine's hook for the processes of the default ``torch.distributed`` group (module doc)."""

    def __init__(self) -> None:
        self.rank, self.world = world()
        self.device = torch.device("cpu")  # where collective tensors live (CUDA for NCCL)
        self.layers: list[GlobalBatchNorm] = []

    def check(self, batch_size: int, num_samples: int) -> None:
        if batch_size % self.world:
            raise UserError("train.batch_size", batch_size, f"a positive multiple of the {self.world} processes")
        if self.world > 1 and num_samples < batch_size:
            raise UserError("train.batch_size", batch_size, f"at most the {num_samples} training samples",
                            message=f"{self.world} processes split full global batches")

    def wrap(self, objective: nn.Module, device: torch.device) -> nn.Module:
        self.device = device
        if self.world == 1:
            return objective
        if getattr(objective, "sync_batchnorm", True):
            global_batchnorm(objective)
        self.layers = [m for m in objective.modules() if isinstance(m, GlobalBatchNorm)]
        for m in self.layers:
            m.synchronized = True
        return nn.parallel.DistributedDataParallel(objective, broadcast_buffers=False,
                                                   device_ids=[device.index] if device.type == "cuda" else None)

    def shard(self, order: torch.Tensor, batch_size: int) -> torch.Tensor:
        return shard_order(order, batch_size, self.rank, self.world)

    def augmentation_generator(self, generator: torch.Generator, seed: int) -> torch.Generator:
        if self.world == 1:
            return generator
        return torch.Generator().manual_seed(seed * 1_000_003 + 7919 * (self.rank + 1))

    def any(self, flag: bool | torch.Tensor) -> bool:
        if self.world == 1:
            return bool(flag)
        t = torch.tensor([1.0 if bool(flag) else 0.0], device=self.device)
        dist.all_reduce(t)
        return bool(t.item() > 0)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        if self.world == 1:
            return values
        t = values.to(self.device)
        dist.all_reduce(t)
        return t.cpu()

    def gather(self, obj: Any) -> list:
        if self.world == 1:
            return [obj]
        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def finish(self, objective: nn.Module) -> None:
        for m in self.layers:
            m.synchronized = False


def train_distributed(objective: nn.Module, split: Split, cfg, **kwargs) -> TrainResult:
    """:func:`unnas.engine.train` on every rank of the process group (see the module doc)."""
    return train(objective, split, cfg, replicas=DataParallel(), **kwargs)


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
    from unnas.runner import dataset_for
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
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        data = dataset_for(cfg)
        cls = objective_class(args.pretext)
        spec = ArchSpec(args.generator, params, args.arch_seed)
        torch.manual_seed(args.seed)
        objective = build_objective(args.pretext, build(spec, cls.input_channels(data.channels)), DataInfo.of(data),
                                    cfg.objectives.get(args.pretext))
        metrics = train_and_evaluate(objective, data, cfg, spec, out, seed=args.seed, device=device)
        if metrics is not None:
            print(json.dumps(metrics))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def train_and_evaluate(objective: nn.Module, data, cfg, spec, out: Path, *, seed: int = 0,
                       device: torch.device = torch.device("cpu")) -> dict | None:
    """Train ``objective`` on every rank, then evaluate it on rank 0 alone and write
    ``result.json`` and ``model.pt`` (backbone and full objective state) into ``out``. Returns
    rank 0's metrics (``None`` on the other ranks)."""
    from unnas import config as config_mod
    from unnas.jobs import training_metrics

    rank, w = world()
    res = train_distributed(objective, data.train, cfg.train, seed=seed, device=device,
                            checkpoint_dir=out / "checkpoints", config=config_mod.to_dict(cfg),
                            log=lambda m: print(f"[rank {rank}] {m}", file=sys.stderr))
    if rank != 0:
        return None
    metrics = {**training_metrics(objective, data, cfg, device, res.step_losses), "steps": res.steps, "world_size": w,
               "train_loss": res.history[-1]["loss"] if res.history else float("nan"), "seconds": res.seconds}
    save_atomic({"backbone": objective.backbone.state_dict(), "objective_state": objective.state_dict(),
                 "spec": spec.to_json(), "objective": objective.name, "seed": seed,
                 "config": config_mod.to_dict(cfg)}, out / "model.pt")
    (out / "result.json").write_text(json.dumps({"spec": json.loads(spec.to_json()), "objective": objective.name,
                                                 "seed": seed, "metrics": metrics}, indent=1))
    return metrics


if __name__ == "__main__":
    sys.exit(main())
