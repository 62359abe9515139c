"""Rotation prediction (Gidaris et al. 2018, as in UnNAS): every image contributes all four
rotations (0, 90, 180, 270 degrees), so the batch is four times larger; the label of
``rot90(x, k)`` is ``k``, and the reported accuracy is over all ``4B`` predictions.

Training augmentation (before rotating): random crop with padding (1/8 of the side) and a
horizontal flip, padding with the mean colour, as UnNAS does on CIFAR (:meth:`Objective.augment`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unnas.errors import UserError
from unnas.objectives.base import DataInfo, Objective, accuracy
from unnas.registry import OBJECTIVES


def rotate_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, C, H, W)`` -> ``(4B, C, H, W)`` ordered ``[rot0(x), rot90(x), rot180(x), rot270(x)]``
    (counter-clockwise quarter turns, ``torch.rot90`` over H, W) and labels ``k``. Clips
    ``(B, T, C, H, W)`` turn all their frames alike."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"rotation needs square images, got {tuple(x.shape[-2:])}")
    out = torch.cat([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)], dim=0)
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
    return out, labels


@OBJECTIVES.register("rotation")
class Rotation(Objective):
    name = "rotation"
    # the trained features' effective rank: positive on every measured draw of NAS-Bench-Macro and of
    # the default population, where the rotation accuracy itself ranks Macro in reverse
    default_score = "rankme"

    def __init__(self, backbone, info, options=None):
        self.check_data(info)
        super().__init__(backbone, info, options)
        self.head = nn.Linear(backbone.num_features, 4)

    @classmethod
    def check_data(cls, info: DataInfo, options=None) -> None:
        h, w = info.image_size
        if h != w:
            raise UserError("--data", f"{h}x{w}", "square images (set data.image_size)",
                            message=f"rotation needs square images (a quarter turn swaps height and "
                                    f"width); these are {h}x{w}")

    def prepare(self, images: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 ``(B, C, H, W)`` -> the four rotations ``(4B, C, H, W)`` (normalized) and labels."""
        x = super().train_input(images, generator) if self.training else self.eval_input(images)
        return rotate_batch(x)

    def train_input(self, images, generator):
        return rotate_batch(super().train_input(images, generator))[0]

    def forward(self, images, labels=None, generator=None):
        x, target = self.prepare(images, generator)
        logits = self.head(self.backbone.pooled(x))
        return {"loss": F.cross_entropy(logits, target), "acc": accuracy(logits, target),
                "n": torch.tensor(target.shape[0])}
