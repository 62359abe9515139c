"""Projection heads, the momentum (key) encoder and its exponential moving average update.

The key encoder is a deep copy of the query encoder (backbone + projection head) whose
parameters have ``requires_grad=False``: the optimizer never sees them and no gradient flows
into them. After every optimizer step ``k <- m * k + (1 - m) * q`` for every parameter.
Its BN layers always normalize with the statistics of the batch they see (as in the reference,
the key encoder runs in training mode while MoCo trains); their running statistics track the key
encoder's own inputs and are never used (the objective evaluates with batch statistics too).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from unnas.precision import full_precision


def projection_head(in_dim: int, out_dim: int, hidden: int = 0) -> nn.Module:
    """MoCo v1: ``Linear(in_dim, out_dim)``. MoCo v2 (``hidden > 0``): ``Linear-ReLU-Linear``."""
    if hidden > 0:
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_dim))
    return nn.Linear(in_dim, out_dim)


def embed(backbone: nn.Module, head: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """L2-normalized embedding ``head(pooled backbone features)``. The backbone follows the
    ambient autocast; the projection head and the normalization always run in float32, so the
    contrastive logits are not computed from 8-bit-mantissa embeddings."""
    feats = backbone.pooled(x)
    with full_precision(feats):
        return F.normalize(head(feats.float()), dim=1)


def momentum_copy(module: nn.Module) -> nn.Module:
    """A deep copy that takes no gradient (the key encoder at initialization: equal to the query's)."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """``t <- m * t + (1 - m) * s`` for every parameter (matched by registration order)."""
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(f"momentum must be in [0, 1], got {momentum}")
    tp, sp = list(target.parameters()), list(source.parameters())
    if len(tp) != len(sp) or any(a.shape != b.shape for a, b in zip(tp, sp)):
        raise ValueError("the key and query encoders have different parameters")
    if tp:
        torch._foreach_mul_(tp, momentum)
        torch._foreach_add_(tp, [s.detach() for s in sp], alpha=1.0 - momentum)
