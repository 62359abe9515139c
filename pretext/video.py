"""Label-free objectives on clips ``(B, T, C, H, W)``.

* ``clip-rotation``: every clip contributes all four rotations (0, 90, 180, 270 degrees, the same
  quarter turn for all its frames); the label of ``rot90(clip, k)`` is ``k`` (batch 4B), as image
  rotation does per image.
* ``arrow-of-time``: every clip contributes itself (label 0) and its frames in reverse order
  (label 1): is the clip played forwards or backwards? (Wei et al. 2018.)
* ``temporal-order``: every clip contributes itself (label 0) and a shuffled copy (label 1), whose
  frame order is a random permutation that is neither the identity nor the reversal (temporal order
  verification, Misra et al. 2016; a reversed clip is still in order).

Training inputs are augmented first with one pad-crop and flip per clip (the same for all its
frames; :meth:`Objective.augment`). The heads are linear on the backbone's pooled features; the
reported accuracy is over all predictions. No label is read.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from unnas.pretext.rotation import Rotation

from unnas.objectives.base import Objective, accuracy
from unnas.registry import OBJECTIVES


@OBJECTIVES.register("clip-rotation")
class ClipRotation(Rotation):
    """Rotation prediction on clips: one quarter turn for all the frames of a clip."""

    name = "clip-rotation"
    data_kinds = ("video",)
    default_score = "pretext"  # the image objective's choice was not measured on clips


def reverse_clips(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, T, ...)`` -> ``(2B, T, ...)`` ordered ``[x, x reversed in time]`` and labels ``[0]*B + [1]*B``."""
    out = torch.cat([x, x.flip(1)], dim=0)
    return out, torch.arange(2, device=x.device).repeat_interleave(x.shape[0])


def shuffle_orders(n: int, frames: int, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` random frame orders ``(n, frames)``, none of them the identity or the reversal (when
    ``frames >= 3``; with 2 frames the only other order is the reversal, which is used)."""
    orders = torch.argsort(torch.rand(n, frames, generator=generator), dim=1)
    ident = torch.arange(frames)
    if frames >= 3:
        bad = (orders == ident).all(1) | (orders == ident.flip(0)).all(1)
        # swap the first two frames of the identity or the reversal: neither ordered nor reversed
        fix = orders[bad].clone()
        fix[:, [0, 1]] = fix[:, [1, 0]]
        orders[bad] = fix
    elif frames == 2:
        orders = ident.flip(0).expand(n, 2).clone()
    return orders


def shuffle_clips(x: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(B, T, ...)`` -> ``(2B, T, ...)`` ordered ``[x, x with shuffled frames]``, labels
    ``[0]*B + [1]*B`` and the orders ``(B, T)`` used (``shuffled[i, t] = x[i, orders[i, t]]``)."""
    b, t = x.shape[:2]
    orders = shuffle_orders(b, t, generator).to(x.device)
    shuffled = x[torch.arange(b, device=x.device)[:, None], orders]
    out = torch.cat([x, shuffled], dim=0)
    return out, torch.arange(2, device=x.device).repeat_interleave(b), orders


class _BinaryClipTask(Objective):
    """Two-way classification of clips against a transformed copy of themselves."""

    data_kinds = ("video",)
    #: ``(normalized clips, generator) -> (2B clips, their 0/1 labels)``, set by each task
    pair: Callable[[torch.Tensor, torch.Generator | None], tuple[torch.Tensor, torch.Tensor]]

    def __init__(self, backbone, info, options=None):
        super().__init__(backbone, info, options)
        self.head = nn.Linear(backbone.num_features, 2)

    def prepare(self, images: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 clips ``(B, T, C, H, W)`` -> the ``2B`` normalized inputs and their labels."""
        x = super().train_input(images, generator) if self.training else self.eval_input(images)
        return self.pair(x, generator)

    def train_input(self, images, generator):
        return self.pair(super().train_input(images, generator), generator)[0]

    def forward(self, images, labels=None, generator=None):
        x, target = self.prepare(images, generator)
        logits = self.head(self.backbone.pooled(x))
        return {"loss": F.cross_entropy(logits, target), "acc": accuracy(logits, target),
                "n": torch.tensor(target.shape[0])}


@OBJECTIVES.register("arrow-of-time")
class ArrowOfTime(_BinaryClipTask):
    """Forwards (0) or backwards (1)?"""

    name = "arrow-of-time"
    pair = staticmethod(lambda x, generator: reverse_clips(x))


@OBJECTIVES.register("temporal-order")
class TemporalOrder(_BinaryClipTask):
    """In order (0) or shuffled (1)?"""

    name = "temporal-order"
    pair = staticmethod(lambda x, generator: shuffle_clips(x, generator)[:2])
