"""Weighted k-nearest-neighbour classification of frozen features (the InstDisc / MoCo monitor).

Features are L2-normalized; similarity is the cosine (inner product, exact search with faiss).
Each of the ``k`` nearest training samples votes for its class with weight ``exp(sim / t)``;
the prediction is the class with the largest total vote (ties go to the lower class index).
"""

from __future__ import annotations

import faiss
import numpy as np
import torch

from unnas.registry import EVALUATORS


def _as_np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn_predict(train_feats, train_labels, query_feats, k: int = 200, t: float = 0.1,
                num_classes: int | None = None) -> np.ndarray:
    """Predicted class of every query."""
    xb, xq = _normalize(_as_np(train_feats)), _normalize(_as_np(query_feats))
    yb = _as_np(train_labels).astype(np.int64)
    if xb.shape[0] == 0:
        raise ValueError("kNN needs at least one training feature")
    if num_classes is None:
        num_classes = int(yb.max()) + 1
    k = min(int(k), xb.shape[0])
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    sims, idx = index.search(xq, k)
    weights = np.exp(sims.astype(np.float64) / t)
    votes = np.zeros((xq.shape[0], num_classes))
    np.add.at(votes, (np.arange(xq.shape[0])[:, None], yb[idx]), weights)
    return votes.argmax(axis=1)


@EVALUATORS.register("knn")
def knn_accuracy(train_feats, train_labels, test_feats, test_labels, k: int = 200, t: float = 0.1,
                 num_classes: int | None = None) -> float:
    """Top-1 accuracy (in [0, 1]) of the weighted kNN classifier."""
    pred = knn_predict(train_feats, train_labels, test_feats, k, t, num_classes)
    return float((pred == _as_np(test_labels)).mean())
