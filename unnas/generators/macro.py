"""NAS-Bench-Macro (Su et al., CVPR 2021), generator ``macro``: the published macro space.

Eight searchable layers in stages of [2, 3, 3]; each layer is one of :data:`CHOICES`:
``'0'`` identity, ``'1'`` MobileNetV2 block kernel 3 expansion 3, ``'2'`` MobileNetV2 block
kernel 5 expansion 6. A network is named by its 8-digit string (3^8 = 6,561 networks).

Network (``width`` = 1 is the published one): 3x3 conv stem to 32 channels + BN + ReLU. The
first layer of every stage has stride 2 and doubles the channels (32 -> 64 -> 128 -> 256); an
identity there becomes 1x1 conv (stride 2) + BN. MobileNetV2 block: 1x1 expand to ``round(cin *
t)`` + BN + ReLU, k x k depthwise (stride) + BN + ReLU, 1x1 project + BN, plus the input when
the shapes match. Head: 1x1 conv to 1280 + BN + ReLU; the classifier follows global pooling.
``width`` multiplies the stem (and hence every stage) and the 1280-wide head conv.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from unnas.generators.layers import EnumeratedSpace, bad_param
from unnas.registry import GENERATORS
from unnas.spec import Backbone

CHOICES = {"0": "identity", "1": "mb_k3_t3", "2": "mb_k5_t6"}
STAGES = (2, 3, 3)
N_ARCHS = 3 ** sum(STAGES)


def check_arch(arch: Any, gen: str = "macro") -> str:
    if not isinstance(arch, str) or len(arch) != sum(STAGES) or any(ch not in CHOICES for ch in arch):
        raise bad_param(gen, "arch", arch, f"an {sum(STAGES)}-digit string over 0 (identity), "
                                           "1 (MBConv k3 t3), 2 (MBConv k5 t6)")
    return arch


def all_archs() -> Iterator[str]:
    """All 6,561 architecture strings in lexicographic order."""
    for digits in itertools.product("012", repeat=sum(STAGES)):
        yield "".join(digits)


def from_index(index: int) -> str:
    if not 0 <= index < N_ARCHS:
        raise ValueError(f"index must be in [0, {N_ARCHS}), got {index}")
    return np.base_repr(index, 3).zfill(sum(STAGES))


def arch_index(arch: str) -> int:
    return int(check_arch(arch), 3)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, t: int, k: int):
        super().__init__()
        hidden = round(cin * t)
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, hidden, k, stride, k // 2, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


def make_layer(choice: str, cin: int, cout: int, stride: int) -> nn.Module:
    if choice == "1":
        return InvertedResidual(cin, cout, stride, 3, 3)
    if choice == "2":
        return InvertedResidual(cin, cout, stride, 6, 5)
    if stride != 1 or cin != cout:
        return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    return nn.Identity()


def layer_plan(stem: int, widths: Sequence[int]) -> list[tuple[int, int, int]]:
    """``(cin, cout, stride)`` of the eight layers for a stem width and the three stage widths:
    the first layer of a stage has stride 2 and widens to the stage's width."""
    plan, c = [], stem
    for n, w in zip(STAGES, widths):
        for i in range(n):
            plan.append((c, w, 2 if i == 0 else 1))
            c = w
    return plan


class MacroSkeleton(Backbone):
    """Stem (3x3 conv + BN + ReLU to ``stem`` channels), the given layers, head (1x1 conv to
    ``head`` channels + BN + ReLU); shared by NAS-Bench-Macro and the spaces built on it.
    ``layers`` may be a function returning them: it is called after the stem is built, so that a
    seeded initialisation draws stem, layers and head in that order."""

    def __init__(self, in_channels: int, stem: int, layers: Sequence[nn.Module] | Callable[[], Sequence[nn.Module]],
                 last: int, head: int, num_classes: int | None):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.ReLU())
        if callable(layers):
            layers = layers()
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Conv2d(last, head, 1, bias=False), nn.BatchNorm2d(head), nn.ReLU())
        self.num_features = head
        self.set_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.layers(self.stem(x)))


def widths(width: float) -> tuple[int, list[int], int]:
    """``(stem, stage widths, head)`` of the network at a width multiplier (1 = the published one)."""
    c = max(1, int(round(32 * width)))
    return c, [2 * c, 4 * c, 8 * c], max(1, int(round(1280 * width)))


class MacroNet(MacroSkeleton):
    def __init__(self, arch: str, in_channels: int, width: float, num_classes: int | None):
        stem, stage, head = widths(width)
        plan = layer_plan(stem, stage)
        super().__init__(in_channels, stem, lambda: [make_layer(arch[i], *p) for i, p in enumerate(plan)],
                         stage[-1], head, num_classes)


@GENERATORS.register("macro")
class Macro(EnumeratedSpace):
    """NAS-Bench-Macro. ``arch``: an 8-digit string, or "" to draw one uniformly from the seed.
    Population sampling draws ``arch`` uniformly from the 6,561 networks unless fixed.
    The default ``width=0.25`` is a cheap proxy; ``width=1.0`` is the published network.
    Encoding (for search strategies): the 8 digits, each in 0..2."""

    name = "macro"
    defaults = {"arch": "", "width": 0.25}

    size = N_ARCHS

    from_index = staticmethod(from_index)
    arch_index = staticmethod(arch_index)
    positions, radix = sum(STAGES), len(CHOICES)
    canonical = staticmethod(check_arch)

    def build(self, params, seed, in_channels, num_classes=None) -> Backbone:
        if not params["width"] > 0:
            raise bad_param(self.name, "width", params["width"], "a positive multiplier")
        arch = self.arch(params, seed)
        net = MacroNet(arch, in_channels, float(params["width"]), num_classes)
        net.structure = arch
        return net
