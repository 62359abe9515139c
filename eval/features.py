"""Features of a frozen backbone: eval mode (BN uses its running statistics), no gradients,
batched. The backbone's weights and buffers are left exactly as they were."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def extract_features(objective: nn.Module, images: torch.Tensor, batch_size: int = 256,
                     device: str | torch.device = "cpu") -> torch.Tensor:
    """Pooled features ``(N, D)`` (float32, on the CPU) of uint8 ``images`` through
    ``objective.features`` (the backbone's pooled output on the objective's eval input)."""
    was = objective.training
    objective.eval()
    out = []
    try:
        for s in range(0, images.shape[0], batch_size):
            out.append(objective.features(images[s:s + batch_size].to(device)).float().cpu())
    finally:
        objective.train(was)
    if not out:
        return torch.zeros(0, 0)
    return torch.cat(out)
