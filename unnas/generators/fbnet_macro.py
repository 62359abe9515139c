"""FBNet-Macro, generator ``fbnet-macro``: NAS-Bench-Macro's MobileNetV2 layers with free
expansion ratios, stage widths, kernels and input resolution (the space DMaskingNAS searches).

Skeleton of NAS-Bench-Macro (:mod:`unnas.generators.macro`): a 3x3 conv stem to ``stem`` channels
+ BN + ReLU; eight layers in stages of [2, 3, 3], the first layer of every stage with stride 2,
widening to the stage's width ``channels[s]``; a 1x1 conv head to ``head`` channels + BN + ReLU.
Layer ``l`` is a MobileNetV2 block with kernel ``kernels[l]`` and expansion ``expansions[l]``
(hidden width ``round(cin * t)``, a residual when the shapes match), or, for expansion 0,
NAS-Bench-Macro's identity (a 1x1 conv with stride 2 + BN at a stage's first layer).
``resolution`` in (0, 1]: the network first subsamples its input to ``round(resolution * H) x
round(resolution * W)`` pixels (:func:`subsample`: nearest pixels, row ``floor(i * H / h)``), so its
FLOPs fall with the resolution.

NAS-Bench-Macro's network ``arch`` at width ``w`` is this generator with ``stem, channels, head =
macro.widths(w)``, expansion 0 / 3 / 6 and kernel 3 / 3 / 5 for the digits 0 / 1 / 2 (tested:
same parameter count, FLOPs and outputs). The defaults are ``macro`` at width 0.25 with every
layer ``1`` (MBConv k3 t3).

Population sampling draws, unless fixed: every layer's expansion from :data:`EXPANSIONS`, every
stage width as ``round(s * default width)`` for ``s`` in :data:`CHANNEL_SCALES`, and the
resolution from :data:`RESOLUTIONS`; kernels stay as given.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from unnas.generators.layers import bad_param
from unnas.generators.macro import STAGES, InvertedResidual, MacroSkeleton, layer_plan, make_layer
from unnas.registry import GENERATORS
from unnas.spec import Backbone, Generator

N_LAYERS = sum(STAGES)
EXPANSIONS = (0, 3, 6)
CHANNEL_SCALES = (0.5, 0.75, 1.0)
RESOLUTIONS = (1.0, 0.75, 0.5)
DEFAULT_CHANNELS = [16, 32, 64]


def subsample_index(size: int, target: int, device: torch.device | None = None) -> torch.Tensor:
    """Rows (or columns) ``floor(i * size / target)`` for ``i < target``: nearest-pixel subsampling."""
    return torch.div(torch.arange(target, device=device) * size, target, rounding_mode="floor")


def subsample(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, C, h, w)`` by keeping rows and columns :func:`subsample_index`."""
    if (h, w) == tuple(x.shape[-2:]):
        return x
    x = x.index_select(2, subsample_index(x.shape[2], h, x.device))
    return x.index_select(3, subsample_index(x.shape[3], w, x.device))


def scaled_size(size: int, resolution: float) -> int:
    """The side of an input subsampled to ``resolution`` (at least one pixel)."""
    return max(1, int(round(resolution * size)))


def check_params(params: Mapping[str, Any], gen: str = "fbnet-macro") -> None:
    """Raise :class:`UserError` naming the first bad parameter."""
    for key, n in (("expansions", N_LAYERS), ("kernels", N_LAYERS), ("channels", len(STAGES))):
        v = params[key]
        if not isinstance(v, list) or len(v) != n or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            raise bad_param(gen, key, v, f"a list of {n} integers")
    if any(t < 0 for t in params["expansions"]):
        raise bad_param(gen, "expansions", params["expansions"], "integers >= 0 (0 = identity layer)")
    if any(k < 1 or k % 2 == 0 for k in params["kernels"]):
        raise bad_param(gen, "kernels", params["kernels"], "odd integers >= 1")
    for key in ("stem", "head"):
        if params[key] < 1:
            raise bad_param(gen, key, params[key], "an integer >= 1")
    if any(c < 1 for c in params["channels"]):
        raise bad_param(gen, "channels", params["channels"], "integers >= 1")
    r = params["resolution"]
    if not 0 < r <= 1:
        raise bad_param(gen, "resolution", r, "a fraction of the input size in (0, 1]")


def make_mb_layer(t: int, kernel: int, cin: int, cout: int, stride: int) -> torch.nn.Module:
    """One layer: a MobileNetV2 block (expansion ``t`` > 0) or NAS-Bench-Macro's identity (``t`` = 0)."""
    return InvertedResidual(cin, cout, stride, t, kernel) if t > 0 else make_layer("0", cin, cout, stride)


class FBNetMacroNet(MacroSkeleton):
    def __init__(self, params: Mapping[str, Any], in_channels: int, num_classes: int | None):
        plan = layer_plan(params["stem"], params["channels"])
        layers = [make_mb_layer(t, k, cin, cout, s)
                  for t, k, (cin, cout, s) in zip(params["expansions"], params["kernels"], plan)]
        super().__init__(in_channels, params["stem"], layers, params["channels"][-1], params["head"], num_classes)
        self.resolution = float(params["resolution"])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.resolution < 1:
            x = subsample(x, scaled_size(x.shape[2], self.resolution), scaled_size(x.shape[3], self.resolution))
        return super().forward_features(x)


def structure(params: Mapping[str, Any]) -> str:
    join = lambda v: ",".join(str(x) for x in v)  # noqa: E731
    return (f"e={join(params['expansions'])};k={join(params['kernels'])};c={params['stem']},"
            f"{join(params['channels'])},{params['head']};r={params['resolution']:g}")


@GENERATORS.register("fbnet-macro")
class FBNetMacro(Generator):
    """NAS-Bench-Macro's skeleton with per-layer expansions and kernels, stage widths and input
    resolution (see the module docstring)."""

    name = "fbnet-macro"
    defaults = {"stem": 8, "channels": list(DEFAULT_CHANNELS), "head": 320, "kernels": [3] * N_LAYERS,
                "expansions": [3] * N_LAYERS, "resolution": 1.0}

    def sample_params(self, rng: np.random.Generator, base: Mapping[str, Any] | None = None) -> dict:
        out = dict(base or {})
        if "expansions" not in out:
            out["expansions"] = [int(EXPANSIONS[int(rng.integers(len(EXPANSIONS)))]) for _ in range(N_LAYERS)]
        if "channels" not in out:
            out["channels"] = [max(1, int(round(CHANNEL_SCALES[int(rng.integers(len(CHANNEL_SCALES)))] * c)))
                               for c in DEFAULT_CHANNELS]
        if "resolution" not in out:
            out["resolution"] = float(RESOLUTIONS[int(rng.integers(len(RESOLUTIONS)))])
        return self.resolve(out)

    def uses_seed(self, params: Mapping[str, Any]) -> bool:
        return False

    def build(self, params, seed, in_channels, num_classes=None) -> Backbone:
        check_params(params, self.name)
        net = FBNetMacroNet(params, in_channels, num_classes)
        net.structure = structure(params)
        return net


def from_macro(arch: str, width: float = 1.0) -> dict[str, Any]:
    """The ``fbnet-macro`` parameters of NAS-Bench-Macro's network ``arch`` at ``width``."""
    from unnas.generators import macro

    macro.check_arch(arch)
    stem, channels, head = macro.widths(width)
    return {"stem": stem, "channels": channels, "head": head, "resolution": 1.0,
            "expansions": [{"0": 0, "1": 3, "2": 6}[d] for d in arch],
            "kernels": [{"0": 3, "1": 3, "2": 5}[d] for d in arch]}

