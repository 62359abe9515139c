"""AZ-NAS (Lee & Ham, CVPR 2024): expressivity, progressivity and trainability of an untrained network.

As in the authors' NAS-Bench-201 code: a copy of the backbone in training mode, its convolutions and
linear layers re-drawn from Kaiming-normal (fan-in, ReLU gain) with zero biases and unit-weight,
zero-bias BatchNorm2d/GroupNorm (``init="none"`` keeps the network's own weights), fed one batch
of ``batch_size`` N(0, 1) images of the data's shape (``input="data"``: the batch's own images).
The *cell features* are the stem's output and the output of every block of the backbone's body
(its ``cells``, ``layers``, ``blocks`` or ``stages`` sequence); a block that returns its input
unchanged (NAS-Bench-Macro's identity layer) is not a cell. Every random draw (weights in the
order ``Module.apply`` visits them, the input, the gradient signs) comes from the proxy's generator.

* ``az_expressivity``: for each cell feature ``(B, C, H, W)`` (``(B, C)`` without a map: H = W = 1),
  the entropy ``-sum p log(p + 1e-8)`` of the normalized eigenvalues ``p`` of the ``C x C``
  covariance of its ``B*H*W`` centred channel vectors; summed over the cells. An eigenvalue below 0
  (rounding, when the covariance is singular: fewer positions than channels) counts as 0; the authors' code returns NaN there and
  agrees with this one wherever it is finite.
* ``az_progressivity``: the smallest increase of that entropy from one cell to the next.
* ``az_trainability``: for each pair of consecutive cells (last to first), the gradient of the
  later one with respect to the earlier one applied to random +-1 signs ``g_out``; ``g_in`` is
  pixel-unshuffled to the later cell's resolution when it is coarser, and ``M = g_in^T g_out /
  (B h w)``; with ``s`` its largest singular value the pair scores ``2 - s - 1 / (s + 1e-6)``
  (0 when the block preserves the gradient's scale, negative otherwise); the mean over pairs. A
  pair whose gradient passes unchanged scores ``-inf``, as in the authors' code.

The fourth component, *complexity*, is the ``flops`` baseline; the paper ranks a population by
``sum log(rank / N)`` of the four (the ``logrank`` rule of :mod:`unnas.eval.aggregate`):
``--ensemble logrank:az_expressivity,az_progressivity,az_trainability,flops``. Forward and
backward only: no loss, no label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from unnas.eval.proxies.base import ProxyInput, backbone_copy, check_positive, memo_key, shared

from unnas.errors import UserError
from unnas.registry import PROXIES

BODIES = ("cells", "layers", "blocks", "stages")


class SyntheticInputOptions:
    """The ``input`` and ``init`` options shared by proxies that, as their authors do, may run on
    Gaussian images and re-drawn Kaiming weights instead of the batch and the network's own."""

    batch_size: int
    input: str
    init: str

    def check_input(self, proxy: str) -> None:
        if self.input not in ("gaussian", "data"):
            raise UserError(f"proxy {proxy} option input", self.input, "gaussian, data")
        if self.init not in ("kaiming", "none"):
            raise UserError(f"proxy {proxy} option init", self.init, "kaiming, none")

    def images_needed(self) -> int:
        """Gaussian inputs read only the data's shape (one image)."""
        return self.batch_size if self.input == "data" else 1


@dataclass(frozen=True)
class AznasOptions(SyntheticInputOptions):
    batch_size: int = 64
    input: str = "gaussian"  # "gaussian": N(0, 1) images (the authors'); "data": the batch's images
    init: str = "kaiming"  # "kaiming": re-drawn Kaiming-normal fan-in weights (the authors'); "none": own weights

    def __post_init__(self):
        check_positive("az", batch_size=self.batch_size)
        self.check_input("az")


def kaiming_init(net: nn.Module, generator: torch.Generator) -> None:
    """The authors' ``kaiming_normal_fanin_init`` applied with ``Module.apply`` (children first)."""

    def init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.affine:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    net.apply(init)


def body_of(net: nn.Module) -> nn.Sequential:
    body = next((getattr(net, n) for n in BODIES if isinstance(getattr(net, n, None), nn.Sequential)), None)
    if not isinstance(getattr(net, "stem", None), nn.Module) or body is None:
        raise UserError("proxy az network", type(net).__name__,
                        f"a backbone with a stem and a sequence of {', '.join(BODIES)}",
                        message="AZ-NAS reads the features after the stem and after every block")
    return body


def cell_features(net: nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The stem's output and every block's output that is not its input, from one
    ``forward_features`` pass (forward hooks, so the backbone's own forward decides the flow)."""
    feats: list[torch.Tensor] = []

    def keep(module, args, out):
        if module is net.stem or out is not args[0]:
            feats.append(out)

    handles = [m.register_forward_hook(keep) for m in (net.stem, *body_of(net))]
    try:
        net.forward_features(inputs)
    finally:
        for h in handles:
            h.remove()
    if len(feats) < 2:
        raise UserError("proxy az network", type(net).__name__, "a backbone with at least one block after the stem")
    return feats


def prepared(x: ProxyInput, options: AznasOptions) -> list[torch.Tensor]:
    """Re-initialise a copy, draw the input, return the cell features (in the graph)."""
    net = backbone_copy(x)
    if options.init == "kaiming":
        with torch.no_grad():
            kaiming_init(net, x.generator)
    if options.input == "data":
        inputs = x.inputs(options.batch_size)
    else:
        shape = (options.batch_size, *x.inputs(1).shape[1:])
        inputs = torch.randn(shape, generator=x.generator, device=x.generator.device).to(x.device)
    return cell_features(net, inputs)


def positions(t: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` (or ``(B, C)``) -> ``(B*H*W, C)``: one row per position."""
    return (t.permute(0, 2, 3, 1) if t.dim() == 4 else t).reshape(-1, t.shape[1])


def spectral_entropy(feat: torch.Tensor) -> float:
    f = positions(feat.detach())
    f = f - f.mean(dim=0, keepdim=True)
    s = torch.linalg.eigvalsh(f.T @ f / f.shape[0]).clamp_min(0)  # rounding of a singular covariance
    p = s / s.sum()
    return float((-p * torch.log(p + 1e-8)).sum())


def entropies_key(x: ProxyInput, options: AznasOptions) -> tuple | None:
    """The memo key of the cell entropies (taken before the draws)."""
    return memo_key(x, "az_entropies", options.images_needed(), options.batch_size, options.input, options.init)


def entropies(x: ProxyInput, options: AznasOptions) -> list[float]:
    """Every cell's spectral entropy (shared by the three components of one network and batch)."""

    def compute() -> list[float]:
        with torch.no_grad():
            return [spectral_entropy(f) for f in prepared(x, options)]

    return shared(x, entropies_key(x, options), compute)


def pair_score(f_out: torch.Tensor, f_in: torch.Tensor, generator: torch.Generator) -> float:
    g_out = (torch.bernoulli(torch.full(f_out.shape, 0.5), generator=generator).to(f_out) - 0.5) * 2
    g_in = torch.autograd.grad(f_out, f_in, grad_outputs=g_out, retain_graph=True, allow_unused=True)[0]
    if g_in is None:
        g_in = torch.zeros_like(f_in)
    if g_out.shape == g_in.shape and torch.equal(g_in, g_out):
        return -math.inf
    if g_out.shape[2:] != g_in.shape[2:]:
        g_in = nn.functional.pixel_unshuffle(g_in, g_in.shape[2] // g_out.shape[2])
    g_in, g_out = positions(g_in), positions(g_out)
    s = float(torch.linalg.svdvals(g_in.T @ g_out / g_out.shape[0]).max())
    return -s - 1 / (s + 1e-6) + 2


@PROXIES.register("az_expressivity", log_scale=False, needs_loss=False, config=AznasOptions)
def az_expressivity(x: ProxyInput, options: AznasOptions) -> float:
    return float(sum(entropies(x, options)))


@PROXIES.register("az_progressivity", log_scale=False, needs_loss=False, config=AznasOptions)
def az_progressivity(x: ProxyInput, options: AznasOptions) -> float:
    e = entropies(x, options)
    return min(b - a for a, b in zip(e, e[1:]))


@PROXIES.register("az_trainability", log_scale=False, needs_loss=False, config=AznasOptions)
def az_trainability(x: ProxyInput, options: AznasOptions) -> float:
    key = entropies_key(x, options)
    feats = prepared(x, options)
    if key is not None and key not in x.memo:  # the same forward: the other two components need no other
        x.memo[key] = [spectral_entropy(f) for f in feats]
    scores = [pair_score(feats[i], feats[i - 1], x.generator) for i in reversed(range(1, len(feats)))]
    return sum(scores) / len(scores)
