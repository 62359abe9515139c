"""A ResNet baseline for small images (He et al. 2016, CIFAR variant): 3x3 stem, stages of basic
blocks with widths w, 2w, 4w, ..., down-sampling at the start of every stage after the first."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import nn

from unnas.registry import GENERATORS
from unnas.spec import Backbone, Generator


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (x if self.short is None else self.short(x)))


class ResNet(Backbone):
    def __init__(self, depths: list[int], width: int, in_channels: int, num_classes: int | None):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        blocks, cin = [], width
        for s, d in enumerate(depths):
            cout = width * 2 ** s
            for b in range(d):
                blocks.append(BasicBlock(cin, cout, 2 if (b == 0 and s > 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.num_features = cin
        self.set_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


@GENERATORS.register("resnet")
class ResNetGenerator(Generator):
    """``depths``: blocks per stage; population sampling draws depths in 1..3 and the width."""

    name = "resnet"
    defaults = {"depths": [1, 1, 1], "width": 16}
    widths = [8, 12, 16, 24, 32]

    def sample_params(self, rng: np.random.Generator, base: Mapping | None = None) -> dict:
        base = dict(base or {})
        n_stages = len(base.get("depths", self.defaults["depths"]))
        out = {"depths": [int(d) for d in rng.integers(1, 4, size=n_stages)],
               "width": int(self.widths[int(rng.integers(len(self.widths)))])}
        return self.resolve({**out, **base})

    def uses_seed(self, params) -> bool:
        return False

    def build(self, params, seed, in_channels, num_classes=None) -> Backbone:
        return ResNet(list(params["depths"]), params["width"], in_channels, num_classes)
