"""A tiny backbone memorizes each pretext task on 64 fixed images: the training loss falls by more
than 80%. The randomness (flips, crops, permutations, tile offsets) is re-seeded every step, so
every step sees the same batch: this checks that inputs, labels and heads are wired together,
not that the task generalizes."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from unnas.objectives.base import DataInfo, build_objective, objective_class
from unnas.spec import ArchSpec, build


def _digits(n: int = 64, scale: int = 1) -> torch.Tensor:
    """The first ``n`` scikit-learn digits (8x8), enlarged ``scale`` times (nearest), uint8 (n, 1, H, W)."""
    from sklearn.datasets import load_digits

    x = torch.from_numpy(np.round(load_digits().images[:n] * (255.0 / 16.0)).astype(np.uint8))
    return x.repeat_interleave(scale, 1).repeat_interleave(scale, 2)[:, None].contiguous()


def _digits16() -> torch.Tensor:
    return _digits(scale=2)


def _color_blocks(n: int = 64, size: int = 16) -> torch.Tensor:
    """Images of 4x4-pixel blocks, each one of six saturated colours (distinct lightness and ab bin)."""
    palette = torch.tensor([[255, 0, 0], [0, 160, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]],
                           dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, len(palette), (n, size // 4, size // 4), generator=g)
    img = palette[idx].permute(0, 3, 1, 2)  # (n, 3, size/4, size/4)
    return img.repeat_interleave(4, 2).repeat_interleave(4, 3).contiguous()


def _overfit(name: str, images: torch.Tensor, steps: int, lr: float) -> tuple[float, float]:
    channels = images.shape[1]
    x = images.float() / 255
    info = DataInfo(channels, 10, tuple(images.shape[-2:]), tuple(x.mean(dim=(0, 2, 3)).tolist()),
                    tuple(x.std(dim=(0, 2, 3)).tolist()))
    torch.manual_seed(0)
    backbone = build(ArchSpec("resnet", {"depths": [1, 1], "width": 8}, 0), objective_class(name).input_channels(channels))
    obj = build_objective(name, backbone, info).train()
    opt = torch.optim.Adam(obj.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        out = obj(images, generator=torch.Generator().manual_seed(0))
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return losses[0], min(losses[-5:])


@pytest.mark.parametrize("name,data,steps,lr", [
    ("rotation", _digits, 40, 0.02),
    ("jigsaw", _digits16, 40, 0.02),
    ("colorization", _color_blocks, 40, 0.02),
])
def test_tiny_backbone_overfits(name, data, steps, lr):
    t0 = time.perf_counter()
    first, last = _overfit(name, data(), steps, lr)
    took = time.perf_counter() - t0
    print(f"\n{name}: loss {first:.3f} -> {last:.3f} ({100 * (1 - last / first):.0f}% lower) in {took:.1f}s")
    assert last < 0.2 * first
