"""Activation-pattern proxies on the backbone: NASWOT and SWAP (and its size-regularised form).

Both read the binary pattern of every ReLU (active / inactive per unit) over a batch, with BatchNorm
in training mode (batch statistics), as the authors' code does. ReLUs are recorded whether they are
``nn.ReLU`` modules or functional calls (:class:`unnas.eval.proxies.base.ReluRecorder`).

* ``naswot`` (Mellor et al., ICML 2021): with ``c_i`` the concatenated binary code of image ``i``,
  ``K[i, j] = N_A - hamming(c_i, c_j)`` (the number of units where the two images agree), summed
  over the ReLUs; the score is ``log |det K|``. Default batch: 128, the paper's. A batch with two
  images of the same code makes ``K`` singular (``-inf``: reported as not finite).
* ``swap`` (SWAP-Score, Peng et al., ICLR 2024): the number of distinct *sample-wise* patterns,
  i.e. of distinct vectors ``(a_1(u), ..., a_B(u))`` over the units ``u`` of every ReLU that
  outputs a feature map (``(B, C, H, W)``; on a backbone without spatial maps, of every ReLU). As
  in the authors' code: 16 images, the mean over 32 re-initialisations of the copy with N(0, 1)
  conv/linear weights, zero biases and unit BatchNorm/GroupNorm affines (drawn from the input's
  generator); ``init="none"`` scores the network's own weights once.
* ``swap_reg``: ``swap * exp(-(P - mu)^2 / sigma)`` with ``P`` the backbone's parameter count in
  thousands, the authors' size regulariser (``mu``: the preferred size, in thousands of parameters;
  ``sigma``: its width, in thousands squared). Neither has a default: the paper sets them from the
  size the search targets, which only the user knows, and a default centred on the population
  (:func:`population_prior`, offered as a helper) penalises the large networks that win on
  NAS-Bench-Macro. A run that lists ``swap_reg`` without both is refused before any job
  (:meth:`SwapRegOptions.require`, called by :func:`unnas.eval.proxies.base.check_options`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from unnas.eval.proxies.base import (
    BATCH_NORMS,
    WEIGHT_LAYERS,
    ProxyInput,
    backbone_copy,
    check_positive,
    memo_key,
    relu_patterns,
    shared,
)

from unnas.errors import UserError
from unnas.generators.complexity import count_params
from unnas.registry import PROXIES

WORD = 63  # samples packed per int64 key (the sign bit unused)
BITMAP_SAMPLES = 20  # up to 2^20 possible keys: count them in a table instead of sorting


@dataclass(frozen=True)
class NaswotOptions:
    batch_size: int = 128

    def __post_init__(self):
        check_positive("naswot", batch_size=self.batch_size)


def naswot_kernel(codes: Sequence[torch.Tensor]) -> torch.Tensor:
    """``K = sum_l [c c^T + (1 - c)(1 - c)^T]`` (float64) of binary codes ``(B, units_l)``."""
    b = codes[0].shape[0]
    k = torch.zeros(b, b, dtype=torch.float64, device=codes[0].device)
    for c in codes:
        # counts below 2^24 are exact in float32
        c = c.to(torch.float32 if c.shape[1] < 2 ** 24 else torch.float64)
        s = c.sum(1)
        k += (c.shape[1] - s[:, None] - s[None, :] + 2 * (c @ c.T)).double()
    return k


@PROXIES.register("naswot", log_scale=False, needs_loss=False, config=NaswotOptions)
def naswot(x: ProxyInput, options: NaswotOptions) -> float:
    codes = relu_patterns(backbone_copy(x), x.inputs(options.batch_size))
    return float(torch.linalg.slogdet(naswot_kernel(codes))[1])


# ------------------------------------------------------------------------------------- SWAP
@dataclass(frozen=True)
class SwapOptions:
    batch_size: int = 16
    repeats: int = 32
    init: str = "normal"  # "normal": re-drawn N(0, 1) weights per repeat (the authors'); "none": own weights

    def __post_init__(self):
        check_positive("swap", batch_size=self.batch_size, repeats=self.repeats)
        if self.init not in ("normal", "none"):
            raise UserError("proxy swap option init", self.init, "normal, none")


@dataclass(frozen=True)
class SwapRegOptions(SwapOptions):
    mu: float | None = None
    sigma: float | None = None

    def require(self) -> None:
        """``mu`` and ``sigma`` have no default: both must be set, finite, ``sigma > 0``."""
        for key in ("mu", "sigma"):
            v = getattr(self, key)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or (key == "sigma" and not v > 0):
                allowed = ("a number, the preferred size in thousands of parameters" if key == "mu" else
                           "a number > 0, the width in thousands of parameters squared")
                raise UserError(f"proxy swap_reg option {key}", v, allowed,
                                message=f"the size regulariser needs a centre and a width (set swap_reg.mu and "
                                        f"swap_reg.sigma); {key} is {v!r}")


def pattern_keys(codes: torch.Tensor) -> torch.Tensor:
    """Binary codes ``(B, units)`` -> one row of int64 keys per unit, ``(units, ceil(B / 63))``:
    two units share a row exactly when they have the same sample-wise pattern (sample ``i`` of a
    word is its bit ``i``)."""
    words = []
    for start in range(0, codes.shape[0], WORD):
        chunk = codes[start:start + WORD].to(torch.int64)
        bits = torch.arange(chunk.shape[0], dtype=torch.int64, device=codes.device)
        words.append((chunk << bits[:, None]).sum(0))  # distinct bits: the sum is their OR
    return torch.stack(words, dim=1)


def distinct_patterns(codes: Sequence[torch.Tensor]) -> int:
    """The number of distinct sample-wise patterns over all units of all the codes."""
    keys = torch.cat([pattern_keys(c) for c in codes])
    if keys.shape[1] > 1:
        return int(torch.unique(keys, dim=0).shape[0])
    if codes[0].shape[0] <= BITMAP_SAMPLES:  # few samples: mark the seen keys in a table, no sort
        seen = torch.zeros(1 << codes[0].shape[0], dtype=torch.bool, device=keys.device)
        seen[keys[:, 0]] = True
        return int(seen.sum())
    return int(torch.unique(keys[:, 0]).numel())


def gaussian_init(net: nn.Module, generator: torch.Generator) -> None:
    """N(0, 1) conv/linear weights and zero biases, unit-weight zero-bias BatchNorm/GroupNorm."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, WEIGHT_LAYERS):
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator).to(m.weight))
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, BATCH_NORMS + (nn.GroupNorm,)) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()


def swap_count(x: ProxyInput, options: SwapOptions) -> float:
    """The mean distinct-pattern count (shared by ``swap`` and ``swap_reg`` of one network and batch)."""
    key = memo_key(x, "swap_count", options.batch_size, options.repeats, options.init)
    return shared(x, key, lambda: _swap_count(x, options))


def _swap_count(x: ProxyInput, options: SwapOptions) -> float:
    net = backbone_copy(x)
    inputs = x.inputs(options.batch_size)
    spatial = getattr(x.backbone, "has_spatial", True)
    keep = (lambda t: t.dim() == 4) if spatial else (lambda t: True)
    counts = []
    for _ in range(options.repeats if options.init == "normal" else 1):  # own weights: one value
        if options.init == "normal":
            gaussian_init(net, x.generator)
        counts.append(distinct_patterns(relu_patterns(net, inputs, keep)))
    return sum(counts) / len(counts)


@PROXIES.register("swap", log_scale=False, needs_loss=False, config=SwapOptions)
def swap(x: ProxyInput, options: SwapOptions) -> float:
    return swap_count(x, options)


def size_factor(num_params: int, mu: float, sigma: float) -> float:
    """The authors' regulariser ``exp(-(P/1000 - mu)^2 / sigma)``."""
    return math.exp(-((num_params / 1e3 - mu) ** 2) / sigma)


def population_prior(param_counts: Sequence[int]) -> dict[str, float]:
    """``mu`` and ``sigma`` centred on a population's sizes: ``mu`` the mean parameter count (in
    thousands) and ``sigma = 2 var``, so the factor is a Gaussian of the population's spread."""
    k = [p / 1e3 for p in param_counts]
    if len(k) < 2:
        raise UserError("proxy swap_reg population", len(k), "at least two parameter counts")
    return {"mu": statistics.fmean(k), "sigma": max(2 * statistics.pvariance(k), 1e-12)}


@PROXIES.register("swap_reg", log_scale=False, needs_loss=False, config=SwapRegOptions)
def swap_reg(x: ProxyInput, options: SwapRegOptions) -> float:
    options.require()
    return swap_count(x, options) * size_factor(count_params(x.backbone), options.mu, options.sigma)
