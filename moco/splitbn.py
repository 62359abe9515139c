"""Keeping BN from leaking the positive pair: split BN, the key shuffle, and the cross-rank shuffle.

With one BN batch, a query and its positive key are normalized with statistics of the same
samples, and the network can "cheat" by recognizing batch statistics instead of images. MoCo
trains on several GPUs, normalizes each GPU's sub-batch on its own and shuffles the keys'
samples across GPUs. In one process we emulate it (as the authors' CIFAR demo does):

* **split BN**: in training, every BN layer normalizes ``groups`` sub-batches separately (sample
  ``n`` in sub-batch ``n % groups`` for NCHW tensors, reshaped without a copy into
  ``(B / groups, groups * C, ...)``; consecutive chunks for channels-last tensors). Running
  statistics are updated with the average over the sub-batches of the per-sub-batch
  statistics, i.e. like one GPU of a multi-GPU run.
* **key shuffle**: the key encoder sees a random permutation of the batch, so a key lands in
  another sub-batch than its query (then the output is un-permuted).
* under ``torch.distributed``: the keys' inputs are gathered from all ranks, permuted with one
  permutation broadcast from rank 0, and every rank encodes its share (the original shuffle-BN).

:func:`split_bn` patches the BN layers of a module for the duration of a ``with`` block; layers
whose class replaces ``forward`` (e.g. timm's ``BatchNormAct2d``) cannot be patched, and for
such a network :func:`grouped_forward` runs the whole encoder sub-batch by sub-batch instead.
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.batchnorm import _BatchNorm
from unnas.moco.queue import distributed_world


def batch_norm_layers(module: nn.Module) -> list[_BatchNorm]:
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


def patchable(bn: _BatchNorm) -> bool:
    """True for BN layers that use the standard ``_BatchNorm.forward`` (BatchNorm1d/2d/3d)."""
    return type(bn).forward is _BatchNorm.forward


def _average_factor(bn: _BatchNorm) -> float:
    """The running-statistics update factor ``_BatchNorm.forward`` would use (and its counter step)."""
    if bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    if bn.momentum is None:  # cumulative moving average
        return 1.0 / float(bn.num_batches_tracked)
    return float(bn.momentum)


def split_batch_norm(x: torch.Tensor, bn: _BatchNorm, groups: int) -> torch.Tensor:
    """Training-mode BN of ``x`` (N, C, ...) with statistics computed per sub-batch.

    The sub-batches are ``n % groups`` for a contiguous (NCHW) ``x``, reshaped without a copy, and
    the consecutive chunks ``n // (N / groups)`` for a channels-last ``x``, so no layout change is
    needed either way (which samples share a sub-batch does not matter, only that they are split).
    Uses ``bn``'s affine parameters; updates its running statistics with the sub-batch average.
    """
    n, c = x.shape[0], x.shape[1]
    if n % groups:
        raise ValueError(f"split BN: batch of {n} is not divisible into {groups} groups")
    track = bn.track_running_stats and bn.running_mean is not None
    factor = _average_factor(bn) if track else 0.0
    if x.is_contiguous() or x.dim() < 3:
        rest = x.shape[2:]
        xs = x.reshape(n // groups, groups * c, *rest)
        w = bn.weight.repeat(groups) if bn.weight is not None else None
        b = bn.bias.repeat(groups) if bn.bias is not None else None
        rm = bn.running_mean.repeat(groups) if track else None
        rv = bn.running_var.repeat(groups) if track else None
        out = F.batch_norm(xs, rm, rv, w, b, True, factor, bn.eps).reshape(x.shape)
        if track:
            rm, rv = rm.view(groups, c), rv.view(groups, c)
    else:
        rms = [bn.running_mean.clone() for _ in range(groups)] if track else [None] * groups
        rvs = [bn.running_var.clone() for _ in range(groups)] if track else [None] * groups
        out = _ChunkedBatchNorm.apply(x, bn.weight, bn.bias, rms, rvs, groups, factor, bn.eps)
        if track:
            rm, rv = torch.stack(rms), torch.stack(rvs)
    if track:
        with torch.no_grad():
            bn.running_mean.copy_(rm.mean(dim=0))
            bn.running_var.copy_(rv.mean(dim=0))
    return out


class _ChunkedBatchNorm(torch.autograd.Function):
    """Training-mode BN of the consecutive chunks of a channels-last ``x``, each with its own
    statistics, each chunk's output written in place into one tensor (no concatenation of the
    outputs: 27% less time than ``cat`` of the chunks on a 128 x 64 x 32 x 32 bfloat16 input, no
    gradient): the values and input gradient of ``cat([F.batch_norm(chunk) ...])`` bit for bit, the same
    aten kernels per chunk (parameter gradients summed over the chunks in chunk order).
    ``running_means`` / ``running_vars``: one tensor per chunk (or ``None``s), updated in place."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_means, running_vars, groups, momentum, eps):
        out = torch.empty_like(x)
        size = x.shape[0] // groups
        like = next((t for t in (weight, running_means[0]) if t is not None), x)  # the statistics' dtype
        stats = x.new_empty((2, groups, x.shape[1]), dtype=like.dtype)
        for g, (xc, oc, rm, rv) in enumerate(zip(x.split(size), out.split(size), running_means, running_vars)):
            torch.ops.aten.native_batch_norm.out(xc, weight, bias, rm, rv, True, momentum, eps,
                                                 out=oc, save_mean=stats[0, g], save_invstd=stats[1, g])
        ctx.save_for_backward(x, weight, stats)
        ctx.groups, ctx.eps = groups, eps
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, weight, stats = ctx.saved_tensors
        size = x.shape[0] // ctx.groups
        affine = weight is not None
        mask = [ctx.needs_input_grad[0], affine and ctx.needs_input_grad[1], affine and ctx.needs_input_grad[2]]
        gx = torch.empty_like(x) if mask[0] else None
        dws, dbs = [], []
        for g, (xc, gc) in enumerate(zip(x.split(size), grad_out.split(size))):
            dx, dw, db = torch.ops.aten.native_batch_norm_backward(gc, xc, weight, None, None, stats[0, g], stats[1, g],
                                                                   True, ctx.eps, mask)
            if mask[0]:
                gx[g * size:(g + 1) * size] = dx
            dws.append(dw)
            dbs.append(db)
        gw = torch.stack(dws).sum(0) if mask[1] else None
        gb = torch.stack(dbs).sum(0) if mask[2] else None
        return gx, gw, gb, None, None, None, None, None


@contextlib.contextmanager
def split_bn(module: nn.Module, groups: int) -> Iterator[nn.Module]:
    """Within the block, every BN layer of ``module`` in training mode uses split BN."""
    if groups <= 1:
        yield module
        return
    layers = batch_norm_layers(module)
    bad = [type(m).__name__ for m in layers if not patchable(m)]
    if bad:
        raise TypeError(f"split BN cannot patch {bad[0]}; use grouped_forward for this network")

    def make(bn: _BatchNorm) -> Callable[[torch.Tensor], torch.Tensor]:
        plain = bn.forward

        def forward(x: torch.Tensor) -> torch.Tensor:
            if bn.training:
                return split_batch_norm(x, bn, groups)
            return plain(x)

        return forward

    try:
        for m in layers:
            m.forward = make(m)
        yield module
    finally:
        for m in layers:
            m.__dict__.pop("forward", None)


def grouped_forward(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, groups: int) -> torch.Tensor:
    """``fn`` applied to each sub-batch ``x[g::groups]`` separately, results put back in place.

    Equivalent to split BN for any normalization layer (running statistics are then updated once
    per sub-batch instead of once with the average)."""
    if groups <= 1:
        return fn(x)
    if x.shape[0] % groups:
        raise ValueError(f"batch of {x.shape[0]} is not divisible into {groups} groups")
    parts = [fn(x[g::groups]) for g in range(groups)]
    out = parts[0].new_empty((x.shape[0], *parts[0].shape[1:]))
    for g, p in enumerate(parts):
        out[g::groups] = p
    return out


def encode_split(fn: Callable[[torch.Tensor], torch.Tensor], module: nn.Module, x: torch.Tensor,
                 groups: int) -> torch.Tensor:
    """``fn(x)`` with split BN over ``groups`` sub-batches in every BN layer of ``module``."""
    if groups <= 1:
        return fn(x)
    if all(patchable(m) for m in batch_norm_layers(module)):
        with split_bn(module, groups):
            return fn(x)
    return grouped_forward(fn, x, groups)


# ------------------------------------------------------------------ key shuffle
def _random_permutation(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.randperm(n, generator=generator).to(device)


@torch.no_grad()
def shuffled_forward(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     generator: torch.Generator | None = None, across_ranks: bool = True) -> torch.Tensor:
    """``fn`` on a random permutation of the batch, output returned in the original order.

    In one process the permutation is drawn from ``generator``. Under ``torch.distributed`` the
    inputs of all ranks are gathered, rank 0's permutation is broadcast, each rank encodes its
    share of the permuted global batch and gets back the outputs of its own samples (unless
    ``across_ranks`` is False: then every rank shuffles its own batch, with no collective call).
    """
    world = distributed_world() if across_ranks else 1
    if world == 1:
        perm = _random_permutation(x.shape[0], generator, x.device)
        out = fn(x[perm])
        return out[torch.argsort(perm)]
    b = x.shape[0]
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous())
    everything = torch.cat(parts)
    perm = _random_permutation(b * world, generator, x.device)
    dist.broadcast(perm, src=0)
    rank = dist.get_rank()
    mine = perm[rank * b:(rank + 1) * b]
    out = fn(everything[mine]).contiguous()
    outs = [torch.empty_like(out) for _ in range(world)]
    dist.all_gather(outs, out)
    full = torch.cat(outs)  # row j holds the output of sample perm[j]
    inverse = torch.argsort(perm)
    return full[inverse[rank * b:(rank + 1) * b]]
