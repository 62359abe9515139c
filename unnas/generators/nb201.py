"""NAS-Bench-201 (Dong & Yang 2020): the published cell space and network, generator ``nb201``.

Cell: nodes 0..3, one edge i -> j for every i < j (6 edges), each edge one of
:data:`OPS`; node j sums its incoming edges, the cell outputs node 3. ``nor_conv_kxk`` is
ReLU-Conv-BN, ``avg_pool_3x3`` has stride 1 and ignores padding, ``none`` multiplies by zero
(its edge stays in the autograd graph, as in the benchmark code). 5^6 = 15,625 cells.

Cell string: ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (the ops into node 1, 2, 3; ``op~i`` reads
node i). :func:`all_archs` enumerates them in the order of :func:`arch_index`.

Network (``width`` = 1, ``cells`` = 5 is the published one): 3x3 conv stem to C = 16 + BN;
``cells`` cells at C; a residual reduction block (ReLU-Conv3x3/2-BN, ReLU-Conv3x3-BN, shortcut
2x2 avg-pool + 1x1 conv) to 2C; ``cells`` cells; reduction to 4C; ``cells`` cells; BN-ReLU; the
head pools globally. ``width`` multiplies C (C = round(16 * width)) for cheap proxies.
Every op is built even where ``none`` edges make it unable to affect the output, so parameter
counts equal the benchmark's; such ops get exactly-zero gradients (see :func:`live_edges`).
"""

from __future__ import annotations

import itertools
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from unnas.generators.layers import EnumeratedSpace, ReLUConvBN, Zero, bad_param
from unnas.registry import GENERATORS
from unnas.spec import Backbone

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))  # (from, to), in string order
N_ARCHS = len(OPS) ** len(EDGES)


def parse(arch: str, gen: str = "nb201") -> tuple[str, ...]:
    """The six edge ops of a cell string, in :data:`EDGES` order. Raises UserError if malformed."""
    fmt = "|op~0|+|op~0|op~1|+|op~0|op~1|op~2| with op in " + ", ".join(OPS)
    nodes = arch.split("+") if isinstance(arch, str) else []
    if len(nodes) != 3:
        raise bad_param(gen, "arch", arch, fmt)
    ops = []
    for j, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise bad_param(gen, "arch", arch, fmt)
        items = node[1:-1].split("|")
        if len(items) != j:
            raise bad_param(gen, "arch", arch, fmt, message=f"node {j} needs {j} inputs, got {len(items)}")
        for i, item in enumerate(items):
            op, _, src = item.partition("~")
            if op not in OPS or src != str(i):
                raise bad_param(gen, "arch", arch, fmt, message=f"bad edge {item!r} into node {j}")
            ops.append(op)
    return tuple(ops)


def to_str(ops: Sequence[str]) -> str:
    """The canonical cell string of six edge ops (:data:`EDGES` order)."""
    if len(ops) != 6 or any(op not in OPS for op in ops):
        raise ValueError(f"need six ops from {OPS}, got {ops}")
    return "+".join("|" + "|".join(f"{ops[e]}~{i}" for e, (i, j) in enumerate(EDGES) if j == node) + "|"
                    for node in (1, 2, 3))


def canonical(arch: str, gen: str = "nb201") -> str:
    """The canonical string of a cell string (:func:`parse`'s errors name the parameter)."""
    return to_str(parse(arch, gen))


def arch_index(arch: str) -> int:
    """Position of a cell in :func:`all_archs` (base-5 digits of the op indices, first edge most significant)."""
    idx = 0
    for op in parse(arch):
        idx = idx * len(OPS) + OPS.index(op)
    return idx


def from_index(index: int) -> str:
    if not 0 <= index < N_ARCHS:
        raise ValueError(f"index must be in [0, {N_ARCHS}), got {index}")
    digits = []
    for _ in EDGES:
        index, d = divmod(index, len(OPS))
        digits.append(OPS[d])
    return to_str(digits[::-1])


def all_archs() -> Iterator[str]:
    """All 15,625 cell strings, in :func:`arch_index` order."""
    for ops in itertools.product(OPS, repeat=len(EDGES)):
        yield to_str(ops)


def live_edges(arch: str) -> set[int]:
    """Edges (indices into :data:`EDGES`) whose op can change the cell output: not ``none``,
    reachable from node 0 and reaching node 3 through non-``none`` edges."""
    ops = parse(arch)
    real = [e for e in range(6) if ops[e] != "none"]
    fwd, bwd = {0}, {3}
    for e in real:  # EDGES are in topological order of their target
        if EDGES[e][0] in fwd:
            fwd.add(EDGES[e][1])
    for e in reversed(real):
        if EDGES[e][1] in bwd:
            bwd.add(EDGES[e][0])
    return {e for e in real if EDGES[e][0] in fwd and EDGES[e][1] in bwd}


def is_cut(arch: str) -> bool:
    """True if no path of non-``none`` edges joins node 0 to node 3 (the cell outputs zeros)."""
    return not any(EDGES[e][1] == 3 for e in live_edges(arch))


def make_op(name: str, c: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3)
    return nn.AvgPool2d(3, 1, 1, count_include_pad=False)


class Cell(nn.Module):
    """One cell: ``edges[e]`` is the module on edge :data:`EDGES` ``[e]``; node j sums its inputs."""

    def __init__(self, edges: Sequence[nn.Module]):
        super().__init__()
        self.edges = nn.ModuleList(edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in (1, 2, 3):
            nodes.append(sum(self.edges[e](nodes[i]) for e, (i, t) in enumerate(EDGES) if t == j))
        return nodes[3]


class ResidualReduction(nn.Module):
    """NAS-Bench-201's reduction block between stages."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv_a = ReLUConvBN(cin, cout, 3, 2)
        self.conv_b = ReLUConvBN(cout, cout, 3, 1)
        self.short = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.short(x) + self.conv_b(self.conv_a(x))


class NB201Net(Backbone):
    """The network around the cells; ``make_cell(c)`` builds one cell of width ``c``."""

    def __init__(self, make_cell: Callable[[int], nn.Module], in_channels: int, c: int, n_cells: int,
                 num_classes: int | None):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        blocks = []
        for s in range(3):
            if s:
                blocks.append(ResidualReduction(c, 2 * c))
                c *= 2
            blocks += [make_cell(c) for _ in range(n_cells)]
        self.cells = nn.Sequential(*blocks)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU())
        self.num_features = c
        self.set_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.lastact(self.cells(self.stem(x)))


@GENERATORS.register("nb201")
class NB201(EnumeratedSpace):
    """NAS-Bench-201. ``arch``: a cell string, or "" to draw one uniformly from the spec seed.
    Population sampling draws ``arch`` uniformly from the 15,625 cells unless fixed.
    Defaults are a cheap proxy (``width=0.5``, ``cells=1``); ``width=1.0, cells=5`` is the published network.
    Encoding (for search strategies): the op index (0..4, :data:`OPS` order) of each edge, :data:`EDGES` order."""

    name = "nb201"
    defaults = {"arch": "", "width": 0.5, "cells": 1}

    size = N_ARCHS

    from_index = staticmethod(from_index)
    arch_index = staticmethod(arch_index)
    positions, radix = len(EDGES), len(OPS)
    canonical = staticmethod(canonical)

    def build(self, params, seed, in_channels, num_classes=None) -> Backbone:
        c = int(round(16 * params["width"]))
        if c < 1:
            raise bad_param(self.name, "width", params["width"], "a multiplier with round(16 * width) >= 1")
        if params["cells"] < 1:
            raise bad_param(self.name, "cells", params["cells"], "an integer >= 1")
        arch = self.arch(params, seed)
        ops = parse(arch)
        net = NB201Net(lambda width: Cell([make_op(op, width) for op in ops]), in_channels, c, params["cells"], num_classes)
        net.structure = arch
        net.has_zero_ops = "none" in ops
        return net
