"""Label-free retrieval of augmented views: how well a network's features recognise the same
image under two random augmentations, among every other image of a held-out set.

``view_retrieval_accuracy(f1, f2)`` is the fraction of images ``i`` whose second-view feature
``f2[i]`` has, among all first-view features ``f1[j]``, its highest cosine similarity with its own
``f1[i]`` (ties go to the lowest index, so a collapsed network that maps everything to one point
scores ``1/N``). No label is involved: it is the held-out score of the ``moco`` objective.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def view_retrieval_accuracy(f1: torch.Tensor, f2: torch.Tensor, chunk: int = 1024) -> float:
    """Top-1 retrieval accuracy of ``f2`` (queries) among ``f1`` (the gallery), both ``(N, D)``."""
    if f1.shape != f2.shape or f1.dim() != 2:
        raise ValueError(f"f1 and f2 must be (N, D) of the same shape, got {tuple(f1.shape)} and {tuple(f2.shape)}")
    n = f1.shape[0]
    if n == 0:
        return float("nan")
    g = F.normalize(f1.double(), dim=1)
    q = F.normalize(f2.double(), dim=1)
    hits = 0
    for s in range(0, n, chunk):
        sim = q[s:s + chunk] @ g.T
        hits += int((sim.argmax(dim=1) == torch.arange(s, min(s + chunk, n))).sum())
    return hits / n
