"""Nearest class mean (NCM) classifier on centred, L2-normalized features (Kang et al. 2020).

Convention: ``mu`` = mean of the training features; every feature ``x`` becomes
``z = (x - mu) / ||x - mu||``; class ``j``'s centroid is the mean of its ``z`` re-normalized to unit
length, ``c_j = mean(z) / ||mean(z)||``; the score of class ``j`` is the cosine ``z . c_j``.
Classes without training images get score ``-inf`` (never predicted).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["NCM", "fit_ncm"]


@dataclass(frozen=True)
class NCM:
    center: torch.Tensor  # (D,) training-feature mean
    centroids: torch.Tensor  # (C, D) unit-norm class centroids (zero rows for empty classes)
    present: torch.Tensor  # (C,) bool, class had training images

    def transform(self, feats: torch.Tensor) -> torch.Tensor:
        return F.normalize(torch.as_tensor(feats, dtype=torch.float64) - self.center, dim=1)

    def scores(self, feats: torch.Tensor) -> torch.Tensor:
        """Cosine similarity ``(N, C)`` of each centred, normalized feature to each centroid."""
        s = self.transform(feats) @ self.centroids.T
        return s.masked_fill(~self.present, float("-inf"))

    def predict(self, feats: torch.Tensor) -> torch.Tensor:
        return self.scores(feats).argmax(dim=1)


def fit_ncm(feats: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> NCM:
    """Class centroids of the training features (float64 throughout)."""
    x = torch.as_tensor(feats, dtype=torch.float64)
    y = torch.as_tensor(labels).long()
    if x.dim() != 2 or y.shape != (x.shape[0],) or x.shape[0] == 0:
        raise ValueError(f"need features (N, D) and labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    c = int(num_classes if num_classes is not None else int(y.max()) + 1)
    center = x.mean(dim=0)
    z = F.normalize(x - center, dim=1)
    sums = torch.zeros(c, x.shape[1], dtype=torch.float64).index_add_(0, y, z)
    counts = torch.bincount(y, minlength=c)
    centroids = F.normalize(sums / counts.clamp_min(1).unsqueeze(1), dim=1)
    return NCM(center, centroids, counts > 0)
