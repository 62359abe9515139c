"""Supervised reference: cross-entropy on the labels through a linear head on pooled features (images
or clips: the backbone pools either)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unnas.errors import UserError
from unnas.objectives.base import Objective, accuracy
from unnas.registry import OBJECTIVES


@OBJECTIVES.register("supervised")
class Supervised(Objective):
    name = "supervised"
    uses_labels = True
    data_kinds = ("image", "video")  # the reference for every kind of data

    def __init__(self, backbone, info, options=None):
        super().__init__(backbone, info, options)
        self.head = nn.Linear(backbone.num_features, info.num_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.pooled(x))

    def forward(self, images, labels=None, generator=None):
        if labels is None:
            raise UserError("objective", self.name, None, message="needs labels")
        x = self.train_input(images, generator) if self.training else self.eval_input(images)
        logits = self.logits(x)
        return {"loss": F.cross_entropy(logits, labels), "acc": accuracy(logits, labels),
                "n": torch.tensor(labels.shape[0])}
