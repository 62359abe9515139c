"""The S3D design space (Xie et al. 2018, "Rethinking spatiotemporal feature learning"): an
Inception network on clips whose blocks each use 2D, full 3D or separable 3D convolutions, with
optional feature gating.

Blocks, bottom to top: 0 the stem (a 7 x 7 convolution with stride 2), 1 the ``1x1`` + ``3x3``
convolution block, then the Inception blocks of three stages (``depths``, default ``[2, 5, 2]``:
Mixed_3b-3c, Mixed_4b-4f, Mixed_5b-5c, with torchvision's / the paper's widths). The ``k x k``
convolutions of a block (the stem's 7 x 7, the 3 x 3 of block 1 and of Inception branches 1 and 2)
are of the block's kind:

* ``2d``: ``1 x k x k`` (frames are processed independently; the max pool of Inception branch 3
  is ``1 x 3 x 3`` too);
* ``3d``: full ``k x k x k`` (I3D);
* ``sep``: ``1 x k x k`` then ``k x 1 x 1``, each followed by BN and ReLU (S3D).

Blocks ``temporal_conv_start <= i < temporal_conv_stop`` (``-1`` = up to the top) are of kind
``temporal`` (``sep`` or ``3d``), the others ``2d``, unless ``convs`` lists one kind per block.
Feature gating ``y = sigmoid(W pool(x) + b) * x`` (S3D-G; ``pool`` averages over time and space,
``W`` is ``C x C``) is applied from block ``gating_start`` on (``-1`` = none): to the output of
blocks 0 and 1 and to each branch of an Inception block. ``width`` scales every channel count;
``stem="small"`` (a ``3 x 3`` stem with stride 1 and no first max pool) suits small clips.
Between the stages, max pools halve time and space as in torchvision's S3D.

Named points (``variant``; explicitly given parameters win over the variant's, and the spec keeps
the variant's name with the values it stands for):

============  ==========================================================================
i3d           full 3D everywhere, no gating
s3d           separable 3D everywhere (torchvision's ``s3d``: 8,320,048 parameters with
              a 400-class classifier at the default ``width=1.0``, ``depths=[2, 5, 2]``)
s3d-g         S3D with gating from block 1 on (Conv2d_2c, as in the paper)
top-heavy     2D up to the first stage (Mixed_3), temporal convolutions from Mixed_4b on
bottom-heavy  temporal convolutions up to Mixed_3c, 2D from Mixed_4b on
============  ==========================================================================

Population sampling draws every parameter that is not fixed: ``depths`` (1..2, 1..5, 1..2
blocks), ``temporal`` (sep, 3d), the temporal window, ``gating_start`` (none or any block) and
``width`` (:data:`WIDTHS`). Fixing ``temporal_conv_stop=-1`` draws a top-heavy population (2D
below a drawn block, temporal from it to the top: ``1 <= start <= n - 1``); fixing
``temporal_conv_start=0`` draws a bottom-heavy one (temporal up to a drawn block,
``1 <= stop <= n - 1``). The seed does not change the network.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from unnas.errors import UserError
from unnas.registry import GENERATORS
from unnas.spec import Backbone, Generator

KINDS = ("2d", "3d", "sep")
TEMPORAL = ("sep", "3d")
STEMS = ("imagenet", "small")
WIDTHS = (0.0625, 0.125, 0.25)  # drawn by population sampling (CPU-sized); 1.0 = the published network
STEM_WIDTH, BLOCK1_WIDTH = 64, 192
# Inception widths per stage: (branch 0, branch 1 reduce, branch 1, branch 2 reduce, branch 2, branch 3)
MIXED = (
    ((64, 96, 128, 16, 32, 32), (128, 128, 192, 32, 96, 64)),
    ((192, 96, 208, 16, 48, 64), (160, 112, 224, 24, 64, 64), (128, 128, 256, 24, 64, 64),
     (112, 144, 288, 32, 64, 64), (256, 160, 320, 32, 128, 128)),
    ((256, 160, 320, 32, 128, 128), (384, 192, 384, 48, 128, 128)),
)
BN_EPS = 1e-3  # as torchvision's S3D


def variant_params(name: str, depths: list[int]) -> dict[str, Any]:
    """The parameters of a named point of the space (see the module docstring)."""
    mixed4 = 2 + int(depths[0])  # index of the first block of the second Inception stage
    points = {
        "i3d": {"temporal": "3d", "temporal_conv_start": 0, "temporal_conv_stop": -1, "gating_start": -1},
        "s3d": {"temporal": "sep", "temporal_conv_start": 0, "temporal_conv_stop": -1, "gating_start": -1},
        "s3d-g": {"temporal": "sep", "temporal_conv_start": 0, "temporal_conv_stop": -1, "gating_start": 1},
        "top-heavy": {"temporal_conv_start": mixed4, "temporal_conv_stop": -1, "gating_start": -1},
        "bottom-heavy": {"temporal_conv_start": 0, "temporal_conv_stop": mixed4, "gating_start": -1},
    }
    if name not in points:
        raise UserError("generator s3d parameter variant", name, ["", *points], message="unknown variant")
    return points[name]


VARIANTS = ("i3d", "s3d", "s3d-g", "top-heavy", "bottom-heavy")


# ------------------------------------------------------------------------------- layers
def conv_bn(cin: int, cout: int, kernel, stride=1, padding=0) -> nn.Sequential:
    """Conv3d (no bias) -> BN -> ReLU."""
    return nn.Sequential(nn.Conv3d(cin, cout, kernel, stride, padding, bias=False),
                         nn.BatchNorm3d(cout, eps=BN_EPS), nn.ReLU(inplace=True))


class STConv(nn.Sequential):
    """A ``k x k`` convolution of one kind (``2d``, ``3d`` or ``sep``, see the module docstring)
    with stride ``stride`` in time and space; the temporal kernel is ``k`` too."""

    def __init__(self, kind: str, cin: int, cout: int, k: int, stride: int = 1):
        p = k // 2
        if kind == "2d":
            layers = [conv_bn(cin, cout, (1, k, k), stride, (0, p, p))]
        elif kind == "3d":
            layers = [conv_bn(cin, cout, k, stride, p)]
        elif kind == "sep":
            layers = [conv_bn(cin, cout, (1, k, k), (1, stride, stride), (0, p, p)),
                      conv_bn(cout, cout, (k, 1, 1), (stride, 1, 1), (p, 0, 0))]
        else:
            raise ValueError(f"unknown convolution kind {kind!r}; allowed: {', '.join(KINDS)}")
        super().__init__(*layers)


class Gate(nn.Module):
    """Feature gating (S3D-G): ``x * sigmoid(W mean_{t,h,w}(x) + b)`` per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))
        return x * w[:, :, None, None, None]


class Mixed(nn.Module):
    """Inception block: 1x1 | 1x1 -> kxk | 1x1 -> kxk | max pool -> 1x1, concatenated."""

    def __init__(self, kind: str, cin: int, widths: tuple[int, ...], gated: bool):
        super().__init__()
        b0, b1r, b1, b2r, b2, b3 = widths
        pool = (1, 3, 3) if kind == "2d" else (3, 3, 3)
        self.branch0 = conv_bn(cin, b0, 1)
        self.branch1 = nn.Sequential(conv_bn(cin, b1r, 1), STConv(kind, b1r, b1, 3))
        self.branch2 = nn.Sequential(conv_bn(cin, b2r, 1), STConv(kind, b2r, b2, 3))
        self.branch3 = nn.Sequential(nn.MaxPool3d(pool, 1, tuple(k // 2 for k in pool)), conv_bn(cin, b3, 1))
        self.gates = nn.ModuleList(Gate(c) for c in (b0, b1, b2, b3)) if gated else None
        self.out_channels = b0 + b1 + b2 + b3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)]
        if self.gates is not None:
            outs = [g(o) for g, o in zip(self.gates, outs)]
        return torch.cat(outs, dim=1)


class S3D(Backbone):
    """A network of the S3D space; takes clips ``(B, T, C, H, W)``, ``forward_features`` returns
    ``(B, C, t, h, w)``."""

    def __init__(self, convs: list[str], gates: list[bool], width: float, depths: list[int], stem: str,
                 in_channels: int, num_classes: int | None):
        super().__init__()
        c = lambda n: max(1, int(round(n * width)))  # noqa: E731
        layers: list[nn.Module] = []
        if stem == "imagenet":
            layers += [STConv(convs[0], in_channels, c(STEM_WIDTH), 7, stride=2),
                       nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))]
        else:
            layers += [STConv(convs[0], in_channels, c(STEM_WIDTH), 3, stride=1)]
        if gates[0]:
            layers.append(Gate(c(STEM_WIDTH)))
        layers += [conv_bn(c(STEM_WIDTH), c(STEM_WIDTH), 1), STConv(convs[1], c(STEM_WIDTH), c(BLOCK1_WIDTH), 3)]
        if gates[1]:
            layers.append(Gate(c(BLOCK1_WIDTH)))
        layers.append(nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        cin, block = c(BLOCK1_WIDTH), 2
        for s, depth in enumerate(depths):
            if s == 1:
                layers.append(nn.MaxPool3d(3, 2, 1))
            elif s == 2:
                layers.append(nn.MaxPool3d(2, 2, ceil_mode=True))  # ceil: a 1-frame input stays 1 frame
            table = MIXED[s]
            for d in range(depth):
                widths = tuple(c(v) for v in table[min(d, len(table) - 1)])
                m = Mixed(convs[block], cin, widths, gates[block])
                layers.append(m)
                cin, block = m.out_channels, block + 1
        self.features = nn.Sequential(*layers)
        self.num_features = cin
        self.set_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5:
            raise ValueError(f"s3d networks take clips (B, T, C, H, W), got a tensor of shape {tuple(x.shape)}")
        return self.features(x.transpose(1, 2))  # (B, C, T, H, W) for Conv3d

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if x.dim() == 5:
            x = x.mean(dim=(2, 3, 4))
        return super().forward_head(x, pre_logits)


# ------------------------------------------------------------------------------- generator
def _bad(key: str, value: Any, allowed: Any, message: str | None = None) -> UserError:
    return UserError(f"generator s3d parameter {key}", value, allowed, message=message)


@GENERATORS.register("s3d")
class S3DGenerator(Generator):
    """The S3D design space (see the module docstring)."""

    name = "s3d"
    data_kind = "video"
    default_frames = 16
    defaults = {"variant": "", "temporal": "sep", "temporal_conv_start": 0, "temporal_conv_stop": -1,
                "gating_start": -1, "convs": [], "width": 1.0, "depths": [2, 5, 2], "stem": "imagenet"}

    def resolve(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        params = dict(params or {})
        variant = params.get("variant", "")
        if not isinstance(variant, str):
            raise _bad("variant", variant, ["", *VARIANTS], message="not a name")
        if variant:
            depths = params.get("depths", self.defaults["depths"])
            params = {**variant_params(variant, depths if isinstance(depths, list) else []), **params}
        out = super().resolve(params)
        d = out["depths"]
        if len(d) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in d):
            raise _bad("depths", d, "three integers >= 1 (Inception blocks per stage)")
        n = 2 + sum(d)
        if out["temporal"] not in TEMPORAL:
            raise _bad("temporal", out["temporal"], TEMPORAL)
        if out["stem"] not in STEMS:
            raise _bad("stem", out["stem"], STEMS)
        if not out["width"] > 0:
            raise _bad("width", out["width"], "a positive multiplier (1.0 = the published widths)")
        start, stop = out["temporal_conv_start"], out["temporal_conv_stop"]
        if not 0 <= start <= n:
            raise _bad("temporal_conv_start", start, f"a block index in 0..{n}")
        if stop == n:
            out["temporal_conv_stop"] = stop = -1  # one spelling for "up to the top"
        if not (stop == -1 or start <= stop < n):
            raise _bad("temporal_conv_stop", stop, f"-1 (the top) or a block index in {start}..{n}")
        if not -1 <= out["gating_start"] < n:
            raise _bad("gating_start", out["gating_start"], f"-1 (no gating) or a block index in 0..{n - 1}")
        convs = out["convs"]
        if convs and (len(convs) != n or any(k not in KINDS for k in convs)):
            raise _bad("convs", convs, f"[] or {n} kinds, one per block, from {', '.join(KINDS)}")
        return out

    @staticmethod
    def blocks(params: Mapping[str, Any]) -> tuple[list[str], list[bool]]:
        """Per block: its convolution kind and whether it is gated."""
        n = 2 + sum(params["depths"])
        if params["convs"]:
            convs = list(params["convs"])
        else:
            stop = n if params["temporal_conv_stop"] == -1 else params["temporal_conv_stop"]
            convs = [params["temporal"] if params["temporal_conv_start"] <= i < stop else "2d" for i in range(n)]
        g = params["gating_start"]
        return convs, [g >= 0 and i >= g for i in range(n)]

    def sample_params(self, rng: np.random.Generator, base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        given = dict(base or {})
        base = dict(given)
        if base.get("variant"):
            depths = base.get("depths", self.defaults["depths"])
            base = {**variant_params(base["variant"], depths if isinstance(depths, list) else []), **base}
        out: dict[str, Any] = {}
        depths = base.get("depths")
        if depths is None:
            depths = out["depths"] = [int(rng.integers(1, len(t) + 1)) for t in MIXED]
        n = 2 + sum(depths) if isinstance(depths, list) else 0
        if "temporal" not in base:
            out["temporal"] = TEMPORAL[int(rng.integers(len(TEMPORAL)))]
        has_start, has_stop = "temporal_conv_start" in base, "temporal_conv_stop" in base
        if n and not base.get("convs"):
            if has_stop and not has_start:  # the top is temporal from a drawn block on
                stop = base["temporal_conv_stop"]
                top = n if stop == -1 else stop
                lo = 1 if stop == -1 else 0
                out["temporal_conv_start"] = int(rng.integers(lo, max(lo, top - 1) + 1))
            elif has_start and not has_stop:  # from the given block up to a drawn one
                start = base["temporal_conv_start"]
                hi = n - 1 if start == 0 else n
                stop = int(rng.integers(start + 1, max(start + 1, hi) + 1))
                out["temporal_conv_stop"] = -1 if stop >= n else stop
            elif not has_start and not has_stop:  # any window of one or more temporal blocks
                start = int(rng.integers(0, n))
                stop = int(rng.integers(start + 1, n + 1))
                out["temporal_conv_start"], out["temporal_conv_stop"] = start, (-1 if stop == n else stop)
        if "gating_start" not in base and n:
            out["gating_start"] = int(rng.integers(-1, n))
        if "width" not in base:
            out["width"] = float(WIDTHS[int(rng.integers(len(WIDTHS)))])
        return self.resolve({**out, **given})

    def uses_seed(self, params) -> bool:
        return False

    def build(self, params, seed, in_channels, num_classes=None) -> Backbone:
        convs, gates = self.blocks(params)
        net = S3D(convs, gates, float(params["width"]), list(params["depths"]), params["stem"], in_channels,
                  num_classes)
        code = {"2d": "2", "3d": "3", "sep": "s"}
        net.structure = (f"stem={params['stem']} width={float(params['width']):g} depths={list(params['depths'])} "
                         f"convs={''.join(code[k] for k in convs)} gates={''.join('g' if g else '-' for g in gates)}")
        return net
