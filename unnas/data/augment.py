"""Batched tensor augmentations with per-sample random parameters from an explicit generator.

Random parameters are always drawn on the CPU from the ``torch.Generator`` passed in, so the
same generator state gives the same augmentation on every device.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def to_float(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` -> normalized float: ``(x / 255 - mean) / std`` per channel."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
    return (x.float() / 255.0 - m) / s


def _rand(n: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Flip each image horizontally with probability ``p``."""
    mask = (_rand(x.shape[0], generator) < p).to(x.device).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, x.flip(-1), x)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero-pad by ``padding`` and cut a random ``H x W`` window per image: one gather from an
    ``unfold`` view of every window (no per-image loop, no copy of the windows)."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    windows = F.pad(x, (padding, padding, padding, padding)).unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, H, W)
    return windows[torch.arange(b, device=x.device), :, oy, ox]


def standard_augment(x: torch.Tensor, generator: torch.Generator | None = None, padding: int | None = None,
                     flip: bool = True) -> torch.Tensor:
    """The usual small-image recipe: random crop with padding (1/8 of the size) and a flip."""
    if padding is None:
        padding = max(1, x.shape[-1] // 8)
    x = random_crop(x, padding, generator)
    return random_flip(x, generator) if flip else x
