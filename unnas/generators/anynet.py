"""ResNet / ResNeXt / AnyNet networks with per-stage depth, width, bottleneck ratio and groups,
and the NDS design spaces over them.

Network: stem, then stage i = ``depths[i]`` residual blocks of output width ``widths[i]`` (the
first block of every stage after the first has stride 2), then the head pools globally.

* ``block="basic"``: two 3x3 conv-BN (ReLU between), as ResNet; ``bottleneck`` and ``groups``
  must be 1.
* ``block="bottleneck"``: 1x1 conv to the inner width ``w / b`` (rounded to a multiple of the
  groups g, at least g), 3x3 group conv with g groups (cardinality; stride here), 1x1 conv to
  ``w``, each + BN, ReLU between: ResNeXt's / AnyNet's X block.
* A block adds its input (through 1x1 conv-BN when the shape changes), then applies ReLU.
* ``stem="small"``: 3x3 conv stride 1 to ``stem_width`` + BN + ReLU (CIFAR);
  ``stem="imagenet"``: 7x7 conv stride 2 + BN + ReLU + 3x3 max-pool stride 2.

Generators (all build the same network; they differ in what population sampling draws, each
stage independently, with :func:`unnas.generators.layers.draw`):

* ``anynet``: a small unconstrained AnyNet space (depth uniform 1..3, width power of two
  8..64, ratio in {1, 2, 4}, groups power of two 1..4, bottleneck blocks);
* ``nds-resnet``, ``nds-resnext-a``, ``nds-resnext-b``: the NDS spaces (Radosavovic et al.
  2019, Table 1: "a, b, n" = n values spaced about evenly in log space from a to b, rounded to
  integers; :func:`unnas.generators.layers.log_spaced`), 3 stages, every stage drawn
  independently. Per stage: ResNet d "1, 24, 9" (rounding merges two values: 8 distinct), w
  "16, 256, 12"; ResNeXt-A d "1, 16, 5", w "16, 256, 5", b and g "1, 4, 3"; ResNeXt-B as A with w
  "64, 1024, 5" and g "1, 16, 5". ResNeXt-A/B have 225**3 = 11,390,625 and 375**3 = 52,734,375
  configurations. The published spaces hold large networks (ResNeXt-B: up to ~14 GFLOPs for a
  16x16 digit): rank them with complexity bounds (``--max-params`` / ``--max-flops``), as NDS
  compares spaces at controlled complexity.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from unnas.generators.encoding import check_codes, fixed_in_base, sampler_values
from unnas.generators.layers import bad_param, draw, log_spaced
from unnas.registry import GENERATORS
from unnas.spec import Backbone, Generator


def inner_width(w: int, b: int, g: int) -> int:
    """Bottleneck width ``w / b`` rounded to the nearest multiple of ``g`` (at least ``g``)."""
    return max(g, int(round(w / b / g)) * g)


def basic_body(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))


def bottleneck_body(cin: int, cout: int, stride: int, b: int, g: int) -> nn.Sequential:
    wb = inner_width(cout, b, g)
    return nn.Sequential(nn.Conv2d(cin, wb, 1, bias=False), nn.BatchNorm2d(wb), nn.ReLU(),
                         nn.Conv2d(wb, wb, 3, stride, 1, groups=g, bias=False), nn.BatchNorm2d(wb), nn.ReLU(),
                         nn.Conv2d(wb, cout, 1, bias=False), nn.BatchNorm2d(cout))


class Residual(nn.Module):
    def __init__(self, body: nn.Module, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = body
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + (x if self.short is None else self.short(x)))


class AnyNet(Backbone):
    def __init__(self, params: Mapping[str, Any], in_channels: int, num_classes: int | None):
        super().__init__()
        sw = params["stem_width"]
        if params["stem"] == "imagenet":
            self.stem = nn.Sequential(nn.Conv2d(in_channels, sw, 7, 2, 3, bias=False), nn.BatchNorm2d(sw), nn.ReLU(),
                                      nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, sw, 3, 1, 1, bias=False), nn.BatchNorm2d(sw), nn.ReLU())
        blocks, cin = [], sw
        for s, (d, w, b, g) in enumerate(zip(params["depths"], params["widths"], params["bottleneck"], params["groups"])):
            for i in range(d):
                stride = 2 if (i == 0 and s > 0) else 1
                body = basic_body(cin, w, stride) if params["block"] == "basic" else bottleneck_body(cin, w, stride, b, g)
                blocks.append(Residual(body, cin, w, stride))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.num_features = cin
        self.set_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


PER_STAGE = ("depths", "widths", "bottleneck", "groups")


class _AnyNetBase(Generator):
    """Shared checks and per-stage sampling.

    ``stage_space`` maps per-stage parameters (depths, widths, bottleneck, groups) to the sampler
    spec of one stage's value; ``fixed`` are parameters the space sets (e.g. the block type)."""

    defaults = {"depths": [1, 1, 1], "widths": [16, 32, 64], "bottleneck": [1, 1, 1], "groups": [1, 1, 1],
                "block": "basic", "stem": "small", "stem_width": 16}
    stage_space: dict[str, Any] = {}
    fixed: dict[str, Any] = {}
    stages = 3

    def check(self, p: Mapping[str, Any]) -> None:
        n = len(p["depths"])
        for key in PER_STAGE:
            v = p[key]
            if len(v) != n or n == 0 or any(not isinstance(x, int) or isinstance(x, bool) or x < 1 for x in v):
                raise bad_param(self.name, key, v, f"a list of {n or 'one or more'} positive integers (one per stage)")
        if p["block"] not in ("basic", "bottleneck"):
            raise bad_param(self.name, "block", p["block"], ["basic", "bottleneck"])
        if p["block"] == "basic" and (any(b != 1 for b in p["bottleneck"]) or any(g != 1 for g in p["groups"])):
            raise bad_param(self.name, "block", "basic", "bottleneck blocks for ratios or groups other than 1",
                            message="basic blocks have no bottleneck ratio or groups")
        if p["stem"] not in ("small", "imagenet"):
            raise bad_param(self.name, "stem", p["stem"], ["small", "imagenet"])
        if p["stem_width"] < 1:
            raise bad_param(self.name, "stem_width", p["stem_width"], "a positive integer")

    def sample_params(self, rng: np.random.Generator, base: Mapping[str, Any] | None = None) -> dict:
        base = dict(base or {})
        out = dict(self.fixed)
        for key in PER_STAGE:
            spec = self.stage_space.get(key)
            if key in base or spec is None:
                continue
            out[key] = [int(draw(rng, spec)) for _ in range(self.stages)]
        return self.resolve({**out, **base})

    def uses_seed(self, params: Mapping[str, Any]) -> bool:
        return False

    def structure(self, params: Mapping[str, Any], seed: int) -> str:
        """The built network's ``structure`` string, without building it."""
        return ";".join(f"{k}={params[k]}" for k in (*PER_STAGE, "block", "stem", "stem_width"))

    # ---- the encoding (unnas.generators.encoding): per searched key and stage, the index of the
    # value among the sorted distinct values the space draws from
    def _encoded(self) -> list[tuple[str, list[Any]]]:
        return [(key, sampler_values(self.stage_space[key])) for key in PER_STAGE if key in self.stage_space]

    def cardinalities(self, base: Mapping[str, Any] | None = None) -> list[int]:
        for key, _ in self._encoded():
            if key in (base or {}):
                raise fixed_in_base(self.name, key, base)
        return [len(values) for _, values in self._encoded() for _ in range(self.stages)]

    def encode(self, params: Mapping[str, Any], seed: int = 0) -> list[int]:
        codes = []
        for key, values in self._encoded():
            v = params[key]
            if len(v) != self.stages or any(x not in values for x in v):
                raise bad_param(self.name, key, v, f"{self.stages} values from {values} (the encoded space)")
            codes += [values.index(x) for x in v]
        return codes

    def decode(self, codes: Sequence[int], base: Mapping[str, Any] | None = None) -> dict:
        codes = check_codes(self.name, codes, self.cardinalities(base))
        out, pos = {**self.fixed, **(base or {})}, 0
        for key, values in self._encoded():
            out[key] = [values[c] for c in codes[pos:pos + self.stages]]
            pos += self.stages
        return self.resolve(out)

    def build(self, params, seed, in_channels, num_classes=None) -> Backbone:
        self.check(params)
        net = AnyNet(params, in_channels, num_classes)
        net.structure = self.structure(params, seed)
        return net


@GENERATORS.register("anynet")
class AnyNetGenerator(_AnyNetBase):
    """AnyNet with a small sampling space (cheap on CPU); fix any per-stage list in ``params``."""

    name = "anynet"
    fixed = {"block": "bottleneck"}
    stage_space = {"depths": ("uniform", 1, 3), "widths": ("pow2", 8, 64), "bottleneck": ("choice", [1, 2, 4]),
                   "groups": ("pow2", 1, 4)}


@GENERATORS.register("nds-resnet")
class NDSResNet(_AnyNetBase):
    """NDS ResNet space: basic blocks, d_i in "1, 24, 9", w_i in "16, 256, 12"."""

    name = "nds-resnet"
    fixed = {"block": "basic"}
    stage_space = {"depths": ("choice", log_spaced(1, 24, 9)), "widths": ("choice", log_spaced(16, 256, 12))}


@GENERATORS.register("nds-resnext-a")
class NDSResNeXtA(_AnyNetBase):
    """NDS ResNeXt-A space: bottleneck blocks, d_i "1, 16, 5", w_i "16, 256, 5", b_i and g_i in {1, 2, 4}."""

    name = "nds-resnext-a"
    fixed = {"block": "bottleneck"}
    stage_space = {"depths": ("choice", log_spaced(1, 16, 5)), "widths": ("choice", log_spaced(16, 256, 5)),
                   "bottleneck": ("choice", log_spaced(1, 4, 3)), "groups": ("choice", log_spaced(1, 4, 3))}


@GENERATORS.register("nds-resnext-b")
class NDSResNeXtB(_AnyNetBase):
    """NDS ResNeXt-B space: as ResNeXt-A with wider stages, w_i "64, 1024, 5", and more groups, g_i "1, 16, 5"."""

    name = "nds-resnext-b"
    fixed = {"block": "bottleneck"}
    stage_space = {"depths": ("choice", log_spaced(1, 16, 5)), "widths": ("choice", log_spaced(64, 1024, 5)),
                   "bottleneck": ("choice", log_spaced(1, 4, 3)), "groups": ("choice", log_spaced(1, 16, 5))}
