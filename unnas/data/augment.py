"""Batched tensor augmentations with per-sample random parameters from an explicit generator.

Random parameters are always drawn on the CPU from the ``torch.Generator`` passed in, so the
same generator state gives the same augmentation on every device.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def channel_shape(x: torch.Tensor) -> list[int]:
    """Broadcast shape of a per-channel vector for ``(B, C, H, W)`` images or ``(B, T, C, H, W)`` clips."""
    return [1] * (x.dim() - 3) + [-1, 1, 1]


def to_float(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` (or clips ``(B, T, C, H, W)``) -> normalized float:
    ``(x / 255 - mean) / std`` per channel."""
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(channel_shape(x))
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(channel_shape(x))
    return (x.float() / 255.0 - m) / s


def _rand(n: int, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(n, generator=generator)


def random_flip(x: torch.Tensor, generator: torch.Generator | None = None, p: float = 0.5) -> torch.Tensor:
    """Flip each image horizontally with probability ``p``."""
    mask = (_rand(x.shape[0], generator) < p).to(x.device).view(-1, *([1] * (x.dim() - 1)))
    return torch.where(mask, x.flip(-1), x)


def pad(x: torch.Tensor, padding: int, fill: Sequence[float] | None = None) -> torch.Tensor:
    """Pad ``(B, C, H, W)`` by ``padding`` on every side with ``fill`` (one value per channel, or
    zeros when ``None``)."""
    if fill is None:
        return F.pad(x, (padding, padding, padding, padding))
    b, c, h, w = x.shape
    if len(fill) != c:
        raise ValueError(f"fill has {len(fill)} values for {c} channels")
    out = torch.tensor(list(fill), dtype=x.dtype, device=x.device).view(1, c, 1, 1)
    out = out.expand(b, c, h + 2 * padding, w + 2 * padding).contiguous()
    out[..., padding:padding + h, padding:padding + w] = x
    return out


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None,
                fill: Sequence[float] | None = None) -> torch.Tensor:
    """Pad by ``padding`` (:func:`pad`) and cut a random ``H x W`` window per image: one gather
    from an ``unfold`` view of every window (no per-image loop, no copy of the windows)."""
    if padding <= 0:
        return x
    b, _, h, w = x.shape
    oy = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    ox = torch.randint(0, 2 * padding + 1, (b,), generator=generator).to(x.device)
    windows = pad(x, padding, fill).unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, H, W)
    return windows[torch.arange(b, device=x.device), :, oy, ox]


def mean_fill(mean: Sequence[float]) -> tuple[int, ...]:
    """The uint8 colour of a dataset's per-channel mean (in ``[0, 1]``): padding with it is padding
    with zeros after normalization, as pycls/UnNAS pad their CIFAR crops."""
    return tuple(int(round(min(max(float(m), 0.0), 1.0) * 255)) for m in mean)


def standard_augment(x: torch.Tensor, generator: torch.Generator | None = None, padding: int | None = None,
                     flip: bool = True, fill: Sequence[float] | None = None) -> torch.Tensor:
    """The usual small-image recipe: random crop with padding (1/8 of the size; ``fill`` per
    channel, e.g. :func:`mean_fill`, zeros by default) and a flip. Clips ``(B, T, C, H, W)`` get
    one crop and one flip each, the same for all their frames."""
    if x.dim() == 5:
        b, t, c, h, w = x.shape
        fill = None if fill is None else tuple(fill) * t
        return standard_augment(x.reshape(b, t * c, h, w), generator, padding, flip, fill).reshape(b, t, c, h, w)
    if padding is None:
        padding = max(1, x.shape[-1] // 8)
    x = random_crop(x, padding, generator, fill)
    return random_flip(x, generator) if flip else x
