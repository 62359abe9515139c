"""Label-free scores of a *trained* network: pure functions of its held-out embeddings and of the
training loop's per-step losses (nothing here reads a label).

Representation quality, on the pooled features of held-out images:

* :func:`rankme` (Garrido et al., ICML 2023): the effective rank ``exp(H(p))`` of the embedding
  matrix, ``p_k = sigma_k / sum(sigma) + eps`` over its singular values. Higher is better.
* :func:`alpha_req` (Agrawal et al., NeurIPS 2022): the decay ``alpha`` of the covariance
  eigenspectrum, ``lambda_k ~ k^-alpha``, fitted by least squares in log-log space. Values near 1
  are best, so its column ranks by ``-|alpha - 1|``.
* :func:`alignment` and :func:`uniformity` (Wang & Isola, ICML 2020), on L2-normalised
  embeddings: ``E ||f(x) - f(x+)||^2`` over two augmented views of each image, and
  ``log E exp(-2 ||f(x) - f(y)||^2)`` over all pairs of distinct images. Lower is better for both.

The objective's own held-out loss (InfoNCE for MoCo) and training speed:

* ``heldout_loss``: the objective's loss on the held-out split. Lower is better.
* :func:`sotl_e` (Ru et al., NeurIPS 2021): the sum of the per-step training losses of the last
  ``E`` epochs (``E = 1`` here). Lower is better.

Each score is registered in :data:`unnas.registry.TRAINED_SCORES` as ``f(TrainedInput) -> float``
with metadata ``orient``: the map from the score's value to a column where higher is better. A
job's row stores the raw values under the registered names; the ranking's columns
(``<objective>/<name>``) store the oriented ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from unnas.registry import TRAINED_SCORES

# Held-out images the embedding scores read (the first ones of the split): bounds the O(N^2) pairs
# of uniformity and the SVDs on large test sets, and is the same for every candidate.
MAX_SAMPLES = 2048
# Held-out images whose two augmented views give the positive pairs of the alignment score (its
# cost: two forward passes of each of them).
VIEW_SAMPLES = 512


@dataclass(frozen=True)
class TrainedInput:
    """What the trained-network scores read: held-out embeddings and the training loss history."""

    features: torch.Tensor  # (N, D) pooled features of the held-out images (eval input)
    views: tuple[torch.Tensor, torch.Tensor]  # (M, D) each: two augmented views of the same M images
    heldout_loss: float  # the objective's loss on the held-out split
    losses: Sequence[Sequence[float]]  # per epoch, its per-step training losses


def rankme(z: torch.Tensor, eps: float = 1e-7) -> float:
    """Effective rank of ``z`` (N, D): exp of the entropy of its normalised singular values
    (0 for an all-zero matrix)."""
    s = torch.linalg.svdvals(z.double())
    if not bool(s.sum() > 0):
        return 0.0
    p = s / s.sum() + eps
    return float(torch.exp(-(p * p.log()).sum()))


def alpha_req(z: torch.Tensor, rel_tol: float = 1e-10) -> float:
    """Power-law decay of the eigenspectrum of ``z``'s covariance: ``-slope`` of the least-squares
    line through ``(log k, log lambda_k)``, over the eigenvalues above ``rel_tol * lambda_1``.
    NaN with fewer than two such eigenvalues."""
    x = z.double() - z.double().mean(dim=0, keepdim=True)
    lam = torch.linalg.svdvals(x) ** 2 / max(1, x.shape[0] - 1)
    lam = lam[lam > rel_tol * lam.max()] if lam.numel() and bool(lam.max() > 0) else lam[:0]
    if lam.numel() < 2:
        return math.nan
    logk = torch.log(torch.arange(1, lam.numel() + 1, dtype=torch.float64))
    logl = lam.log()
    kc = logk - logk.mean()
    slope = (kc * (logl - logl.mean())).sum() / (kc * kc).sum()
    return float(-slope)


def alignment(z1: torch.Tensor, z2: torch.Tensor, alpha: float = 2.0) -> float:
    """Mean ``||f(x) - f(x+)||^alpha`` of the normalised rows of ``z1`` and ``z2`` (positive pairs)."""
    a, b = F.normalize(z1.double(), dim=1), F.normalize(z2.double(), dim=1)
    return float((a - b).norm(dim=1).pow(alpha).mean())


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """``log`` of the mean over pairs of distinct rows of ``exp(-t ||f(x) - f(y)||^2)`` on the
    normalised rows of ``z``; NaN with fewer than two rows."""
    if z.shape[0] < 2:
        return math.nan
    d2 = torch.pdist(F.normalize(z.double(), dim=1)).pow(2)
    return float(torch.logsumexp(-t * d2, dim=0) - math.log(d2.numel()))


def sotl_e(losses: Sequence[Sequence[float]], epochs: int = 1) -> float:
    """Sum of the per-step training losses over the last ``epochs`` epochs (NaN without any)."""
    recent = [float(v) for ep in list(losses)[-epochs:] for v in ep] if epochs > 0 else []
    return math.fsum(recent) if recent else math.nan


def _neg(v: float) -> float:
    return -v


TRAINED_SCORES.add("rankme", lambda x: rankme(x.features), orient=float)
TRAINED_SCORES.add("alpha_req", lambda x: alpha_req(x.features), orient=lambda a: -abs(a - 1.0))
TRAINED_SCORES.add("alignment", lambda x: alignment(*x.views), orient=_neg)
TRAINED_SCORES.add("uniformity", lambda x: uniformity(x.features), orient=_neg)
TRAINED_SCORES.add("heldout_loss", lambda x: float(x.heldout_loss), orient=_neg)
TRAINED_SCORES.add("sotl_e", lambda x: sotl_e(x.losses), orient=_neg)


def trained_scores(x: TrainedInput) -> dict[str, float]:
    """Every registered trained-network score of ``x`` (raw values; NaN where undefined)."""
    out = {}
    for name in TRAINED_SCORES.names():
        v = float(TRAINED_SCORES.get(name)(x))
        out[name] = v if math.isfinite(v) else math.nan
    return out


def oriented(name: str, value: float | None) -> float:
    """The column value of score ``name`` (higher is better); NaN for a missing value."""
    if value is None or not math.isfinite(float(value)):
        return math.nan
    return float(TRAINED_SCORES.meta(name)["orient"](float(value)))
