"""DMaskingNAS building blocks (Wan et al. 2020, FBNetV2): channel masks, Gumbel-softmax,
zero-interleaving of subsampled feature maps.

* A channel choice among counts ``c_1 < ... < c_n`` of one convolution built at ``c_max`` channels
  is the convolution's output times ``sum_i g_i * m_i``, ``m_i`` = ``c_i`` leading ones
  (:func:`leading_ones`, :func:`mixed_mask`). The sum of the mixed mask is the *effective* channel
  count ``sum_i g_i * c_i`` that FLOPs are computed with (:func:`effective`).
* ``g = softmax((alpha + G) / tau)`` with Gumbel noise ``G = -log(-log U)``, ``U`` uniform, drawn from
  an explicit ``torch.Generator`` (:func:`gumbel_noise`).
* A map computed on an input subsampled to ``h x w`` (:func:`unnas.generators.fbnet_macro.subsample`)
  goes back onto the full-resolution ``H x W`` grid by :func:`interleave`: its pixels at rows
  ``floor(i * H / h)`` (and likewise columns), zeros between them, so maps of every resolution
  can be mixed pixel by pixel.
"""

from __future__ import annotations

from typing import Sequence

import torch

from unnas.generators.fbnet_macro import subsample_index


def leading_ones(counts: Sequence[int], width: int) -> torch.Tensor:
    """``(len(counts), width)``: row ``i`` has ``counts[i]`` leading ones, zeros after."""
    if any(c < 0 or c > width for c in counts):
        raise ValueError(f"channel counts {list(counts)} must lie in [0, {width}]")
    return (torch.arange(width).unsqueeze(0) < torch.tensor(list(counts)).unsqueeze(1)).float()


def mixed_mask(weights: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``sum_i weights[i] * masks[i]``, shaped ``(1, C, 1, 1)`` to multiply a feature map."""
    return (weights.unsqueeze(1) * masks).sum(0).view(1, -1, 1, 1)


def effective(weights: torch.Tensor, counts: Sequence[float]) -> torch.Tensor:
    """The expected count ``sum_i weights[i] * counts[i]`` (differentiable in the weights)."""
    return (weights * torch.as_tensor(list(counts), dtype=weights.dtype, device=weights.device)).sum()


def gumbel_noise(shape: Sequence[int], generator: torch.Generator | None) -> torch.Tensor:
    """Standard Gumbel samples ``-log(-log U)``; ``U`` is kept inside ``(0, 1)``."""
    u = torch.rand(tuple(shape), generator=generator).clamp_(1e-10, 1.0 - 1e-7)
    return -torch.log(-torch.log(u))


def gumbel_softmax(logits: torch.Tensor, tau: float, noise: torch.Tensor | None = None) -> torch.Tensor:
    """``softmax((logits + noise) / tau)`` over the last dimension (no noise: plain softmax / tau)."""
    z = logits if noise is None else logits + noise.to(logits.device, logits.dtype)
    return torch.softmax(z / tau, dim=-1)


def interleave(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(B, C, h, w)`` -> ``(B, C, H, W)``: ``y`` at rows ``floor(i * H / h)`` and columns
    ``floor(j * W / w)``, zeros elsewhere (the inverse of subsampling to ``h x w``)."""
    h, w = y.shape[-2:]
    big_h, big_w = size
    if (h, w) == (big_h, big_w):
        return y
    if h > big_h or w > big_w:
        raise ValueError(f"cannot interleave a {h}x{w} map into {big_h}x{big_w}")
    rows = subsample_index(big_h, h, y.device)
    cols = subsample_index(big_w, w, y.device)
    out = y.new_zeros(*y.shape[:-2], big_h, w)
    out = out.index_copy(2, rows, y)
    full = y.new_zeros(*y.shape[:-2], big_h, big_w)
    return full.index_copy(3, cols, out)
