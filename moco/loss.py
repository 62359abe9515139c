"""InfoNCE (van den Oord et al. 2018) as used by MoCo: one positive key and K negatives per query.

For L2-normalized queries ``q`` (B, D), their positive keys ``k`` (B, D) and negatives ``n``
(K, D), the logits are ``[q.k, q.n_1, ..., q.n_K] / T`` and the loss is the cross-entropy with
the positive at index 0, averaged over the batch. The instance-discrimination accuracy is the
fraction of queries whose positive has the largest logit (top-1 over 1 + K). The logits and the
loss are float32 whatever autocast is in effect.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unnas.precision import full_precision


def info_nce_logits(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits ``(B, 1 + K)``: column 0 is the positive pair, the others the negatives."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    with full_precision(q):  # float32 under autocast too: T = 0.1 magnifies a bfloat16 rounding tenfold
        q, k = q.float(), k.float()
        pos = (q * k).sum(dim=1, keepdim=True)
        neg = q @ negatives.float().t()
        return torch.cat([pos, neg], dim=1) / temperature


def info_nce(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor,
             temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, logits)``; the keys carry no gradient (they come from the momentum encoder)."""
    logits = info_nce_logits(q, k.detach(), negatives.detach(), temperature)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target), logits


def instance_accuracy(logits: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose largest logit is the positive (column 0; ties count as correct)."""
    return (logits.argmax(dim=1) == 0).float().mean()
