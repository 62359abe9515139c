"""NDS cell design spaces (Radosavovic et al. 2019, "On Network Design Spaces for Visual
Recognition"): NASNet, Amoeba, PNAS, ENAS and DARTS, as generators ``nds-<space>``.

A cell has two inputs (the outputs of the previous two cells, made ``C`` wide by a
ReLU-1x1conv-BN, or a FactorizedReduce when the previous cell halved the resolution) and
``nodes`` intermediate nodes. Each node picks two inputs among the cell inputs and the earlier
nodes and one operation per input, and sums the two results. The cell output concatenates
either every intermediate node ("all": PNAS, DARTS) or the loose ends, the nodes no other node
reads ("loose": NASNet, Amoeba, ENAS). In a reduction cell the operations reading a cell input
have stride 2.

Sampling (from ``numpy.random.default_rng(sub_seed(seed, ...))``): every choice is uniform;
normal and reduction cells are drawn independently, except PNAS, whose reduction cell is its
normal cell with stride 2 (as in PNAS). DARTS nodes pick two *different* inputs (a DARTS
genotype keeps the two strongest distinct edges); the other spaces pick with replacement.
DARTS's op set contains ``none`` (NDS counts 8 DARTS ops).

Network (DARTS's CIFAR network without auxiliary head or drop-path): 3x3 conv stem of width
``3 * width`` + BN, ``depth`` cells, reductions (doubling the width) at cells ``depth // 3`` and
``2 * depth // 3``; the feature map is the last cell's output. NDS's CIFAR models use
width in {16, 24, 32} and depth in {4, 8, 12, 16, 20} (:data:`NDS_SIZES`); UnNAS uses DARTS at
width 16, depth 20.

Parts that cannot affect the output are not built: an input never read by a non-``none``
operation gets no preprocessing, and a cell whose output no later cell (or the head) reads is
skipped. Parameter counts therefore count only weights that can matter.

A genotype is written ``normal:op~i,op~i,...;reduce:op~i,...`` (two ``op~input`` per node,
inputs 0 and 1 the cell inputs, ``k + 2`` node ``k``). ``genotype`` may be such a string, a
name of :data:`NAMED_GENOTYPES` (DARTS space: ``darts_v1``, ``darts_v2``, ``darts`` = v2), or
empty to draw the cells from the spec seed.

Encoding (for search strategies), per node of the normal cell, then of the reduction cell (PNAS:
the one shared cell): DARTS, whose nodes read two different inputs, gives the index of the input
pair ``i < j`` (``C(k + 2, 2)`` values: 1, 3, 6, 10) and the ops on ``i`` and on ``j``; the other
spaces give input, op, input, op in edge order. Decoding writes the genotype explicitly (a DARTS
node's edges in input order), so a seed-drawn cell and its decoded spec are the same network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from unnas.generators import layers as L
from unnas.generators.encoding import check_codes, fixed_in_base, pairs
from unnas.generators.graphs import sub_seed
from unnas.generators.layers import bad_param
from unnas.registry import GENERATORS
from unnas.spec import Backbone, Generator

NDS_SIZES = {"width": [16, 24, 32], "depth": [4, 8, 12, 16, 20]}

Cell = tuple[tuple[str, int], ...]  # (op, input) per edge, two edges per node


@dataclass(frozen=True)
class Space:
    ops: tuple[str, ...]
    nodes: int
    output: str  # "all" | "loose"
    distinct_inputs: bool = False
    shared_reduce: bool = False


SPACES = {
    "nasnet": Space(("skip_connect", "conv_3x1_1x3", "conv_7x1_1x7", "dil_conv_3x3", "avg_pool_3x3",
                     "max_pool_3x3", "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3",
                     "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7"), 5, "loose"),
    "amoeba": Space(("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "avg_pool_3x3",
                     "max_pool_3x3", "dil_sep_conv_3x3", "conv_7x1_1x7"), 5, "loose"),
    "pnas": Space(("sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7", "conv_7x1_1x7", "skip_connect",
                   "avg_pool_3x3", "max_pool_3x3", "dil_conv_3x3"), 5, "all", shared_reduce=True),
    "enas": Space(("skip_connect", "sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3"), 5, "loose"),
    "darts": Space(("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                    "dil_conv_3x3", "dil_conv_5x5"), 4, "all", distinct_inputs=True),
}


def make_op(name: str, c: int, stride: int) -> nn.Module:
    """The operation ``name`` on ``c`` channels (DARTS / NDS definitions)."""
    if name == "none":
        return L.Zero(stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else L.FactorizedReduce(c, c)
    if name.startswith(("avg_pool", "max_pool")):
        return L.pool(name[:3], int(name[-1]), stride)
    if name.startswith("sep_conv"):
        return L.SepConv(c, c, int(name[-1]), stride)
    if name.startswith("dil_sep_conv"):
        return L.SepConv(c, c, int(name[-1]), stride, dilation=2)
    if name.startswith("dil_conv"):
        return L.DilConv(c, c, int(name[-1]), stride, dilation=2)
    if name in ("conv_1x1", "conv_3x3"):
        return L.ReLUConvBN(c, c, int(name[-1]), stride)
    if name in ("conv_3x1_1x3", "conv_7x1_1x7"):
        return L.FactorizedConv(c, int(name[5]), stride)
    raise ValueError(f"unknown operation {name!r}")


def sample_cell(space: Space, rng: np.random.Generator) -> Cell:
    edges = []
    for k in range(space.nodes):
        n_in = k + 2
        if space.distinct_inputs:
            ins = sorted(int(i) for i in rng.choice(n_in, size=2, replace=False))
        else:
            ins = [int(rng.integers(n_in)) for _ in range(2)]
        edges += [(space.ops[int(rng.integers(len(space.ops)))], i) for i in ins]
    return tuple(edges)


def sample_genotype(space: Space, seed: int) -> tuple[Cell, Cell]:
    normal = sample_cell(space, np.random.default_rng(sub_seed(seed, 0)))
    reduce = normal if space.shared_reduce else sample_cell(space, np.random.default_rng(sub_seed(seed, 1)))
    return normal, reduce


def format_genotype(normal: Cell, reduce: Cell) -> str:
    return ";".join(f"{name}:" + ",".join(f"{op}~{i}" for op, i in cell)
                    for name, cell in (("normal", normal), ("reduce", reduce)))


def _cell(edges: Sequence[tuple[str, int]]) -> Cell:
    return tuple((op, i) for op, i in edges)


# DARTS (Liu et al. 2019) cells in this module's notation (input 0 = previous-previous cell).
_DARTS_V1 = (_cell([("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0), ("sep_conv_3x3", 1),
                    ("skip_connect", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 2)]),
             _cell([("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 0),
                    ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("avg_pool_3x3", 0)]))
_DARTS_V2 = (_cell([("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
                    ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2)]),
             _cell([("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
                    ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1)]))
NAMED_GENOTYPES = {"darts": {"darts": _DARTS_V2, "darts_v1": _DARTS_V1, "darts_v2": _DARTS_V2}}


def parse_genotype(text: str, space_name: str, gen: str = "nds") -> tuple[Cell, Cell]:
    """Parse ``normal:op~i,...;reduce:op~i,...`` (or a named genotype) and check it against the space."""
    space = SPACES[space_name]
    named = NAMED_GENOTYPES.get(space_name, {})
    if text in named:
        return named[text]
    fmt = "normal:op~i,op~i,...;reduce:op~i,..." + (f" or one of {', '.join(sorted(named))}" if named else "")
    parts = dict(p.split(":", 1) for p in text.split(";") if ":" in p)
    if set(parts) != {"normal", "reduce"} or len(text.split(";")) != 2:
        raise bad_param(gen, "genotype", text, fmt)
    cells = []
    for name in ("normal", "reduce"):
        edges = []
        for item in parts[name].split(","):
            op, _, idx = item.partition("~")
            if op not in space.ops or not idx.isdigit():
                raise bad_param(gen, "genotype", text, f"operations {', '.join(space.ops)}",
                                message=f"bad edge {item!r} in the {name} cell")
            edges.append((op, int(idx)))
        if len(edges) != 2 * space.nodes:
            raise bad_param(gen, "genotype", text, f"{2 * space.nodes} edges per cell ({space.nodes} nodes)",
                            message=f"the {name} cell has {len(edges)} edges")
        for e, (_, i) in enumerate(edges):
            if i >= e // 2 + 2:
                raise bad_param(gen, "genotype", text, "node k reads inputs 0..k+1",
                                message=f"edge {e} of the {name} cell reads {i}")
        cells.append(tuple(edges))
    return cells[0], cells[1]


def cell_usage(cell: Cell, n_nodes: int, output: str) -> tuple[list[int], set[int]]:
    """(states concatenated into the output, states read by a non-``none`` op that matters).

    States: 0, 1 = cell inputs, ``k + 2`` = node k. "Matters" walks back from the output."""
    read = {i for op, i in cell if op != "none"}
    if output == "all":
        concat = list(range(2, n_nodes + 2))
    else:
        concat = [k for k in range(2, n_nodes + 2) if k not in read]
    live, stack = set(concat), list(concat)
    while stack:
        s = stack.pop()
        if s < 2:
            continue
        for op, i in cell[2 * (s - 2): 2 * (s - 2) + 2]:
            if op != "none" and i not in live:
                live.add(i)
                stack.append(i)
    return concat, live


def preprocess(cin: int, c: int, reduce: bool) -> nn.Module:
    """A cell input made ``c`` wide: ReLU-1x1conv-BN, or FactorizedReduce after a reduction cell."""
    return L.FactorizedReduce(cin, c) if reduce else L.ReLUConvBN(cin, c, 1)


def stem(in_channels: int, width: int) -> nn.Module:
    """DARTS's CIFAR stem: 3x3 conv to ``3 * width`` channels + BN."""
    return nn.Sequential(nn.Conv2d(in_channels, 3 * width, 3, 1, 1, bias=False), nn.BatchNorm2d(3 * width))


def cell_plan(depth: int, width: int, multiplier) -> list[tuple[int, int, int, bool, bool]]:
    """``(c_pp, c_p, c, reduction, reduction_prev)`` of every cell: reductions (doubling ``c``) at
    cells ``depth // 3`` and ``2 * depth // 3``; ``multiplier(reduction)`` is how many node outputs
    a cell concatenates (its output is ``multiplier * c`` wide)."""
    reductions = {depth // 3, 2 * depth // 3}
    plan, c_pp, c_p, c, red_prev = [], 3 * width, 3 * width, width, False
    for i in range(depth):
        red = i in reductions
        c = c * 2 if red else c
        plan.append((c_pp, c_p, c, red, red_prev))
        c_pp, c_p, red_prev = c_p, c * multiplier(red), red
    return plan


class NDSCell(nn.Module):
    def __init__(self, cell: Cell, n_nodes: int, output: str, c_pp: int, c_p: int, c: int,
                 reduction: bool, reduction_prev: bool):
        super().__init__()
        self.cell, self.reduction, self.reduction_prev, self.c = cell, reduction, reduction_prev, c
        self.concat, live = cell_usage(cell, n_nodes, output)
        self.uses = (0 in live, 1 in live)
        self.pre0 = preprocess(c_pp, c, reduction_prev) if self.uses[0] else None
        self.pre1 = preprocess(c_p, c, False) if self.uses[1] else None
        self.ops = nn.ModuleDict()
        for e, (op, i) in enumerate(cell):
            if op != "none" and (e // 2 + 2) in live:
                self.ops[str(e)] = make_op(op, c, 2 if (reduction and i < 2) else 1)
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor | None, s1: torch.Tensor | None) -> torch.Tensor:
        ref = s1 if s1 is not None else s0
        h, w = ref.shape[-2:]
        if s1 is None and self.reduction_prev:
            h, w = (h + 1) // 2, (w + 1) // 2
        if self.reduction:
            h, w = (h + 1) // 2, (w + 1) // 2
        states: list[torch.Tensor | None] = [self.pre0(s0) if self.pre0 is not None else None,
                                              self.pre1(s1) if self.pre1 is not None else None]
        for k in range(len(self.cell) // 2):
            terms = [self.ops[str(e)](states[self.cell[e][1]]) for e in (2 * k, 2 * k + 1) if str(e) in self.ops]
            states.append(terms[0] + terms[1] if len(terms) == 2 else terms[0] if terms
                          else ref.new_zeros(ref.shape[0], self.c, h, w))
        return torch.cat([states[i] for i in self.concat], dim=1)


class NDSNet(Backbone):
    def __init__(self, normal: Cell, reduce: Cell, space: Space, in_channels: int, width: int, depth: int,
                 num_classes: int | None):
        super().__init__()
        self.stem = stem(in_channels, width)
        usage = {red: cell_usage(reduce if red else normal, space.nodes, space.output) for red in (False, True)}
        plan = []
        for c_pp, c_p, c, red, red_prev in cell_plan(depth, width, lambda r: len(usage[r][0])):
            live = usage[red][1]
            # a cell reading no input (every node all-``none``) still needs s1 for its shape
            plan.append((reduce if red else normal, c_pp, c_p, c, red, red_prev, 0 in live, 1 in live or 0 not in live))
        # liveness: output -1 / -2 are the stem; cell i reads outputs i-1 (s1) and i-2 (s0)
        alive = [False] * depth
        alive[-1] = True
        for i in range(depth - 1, -1, -1):
            if alive[i]:
                if plan[i][7] and i - 1 >= 0:
                    alive[i - 1] = True
                if plan[i][6] and i - 2 >= 0:
                    alive[i - 2] = True
        self.cells = nn.ModuleDict({str(i): NDSCell(p[0], space.nodes, space.output, *p[1:6])
                                    for i, p in enumerate(plan) if alive[i]})
        self.depth = depth
        self.num_features = plan[-1][3] * len(usage[plan[-1][4]][0])
        self.set_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for i in range(self.depth):
            cell = self.cells[str(i)] if str(i) in self.cells else None
            s0, s1 = s1, (cell(s0, s1) if cell is not None else None)
        return s1


class _NDS(Generator):
    space_name = ""
    defaults = {"width": 8, "depth": 5, "genotype": ""}

    @property
    def space(self) -> Space:
        return SPACES[self.space_name]

    def genotype(self, params: Mapping[str, Any], seed: int) -> tuple[Cell, Cell]:
        if params["genotype"]:
            return parse_genotype(params["genotype"], self.space_name, self.name)
        return sample_genotype(self.space, seed)

    def uses_seed(self, params: Mapping[str, Any]) -> bool:
        return not params["genotype"]

    def structure(self, params: Mapping[str, Any], seed: int) -> str:
        """The built network's ``structure`` string, without building it."""
        return format_genotype(*self.genotype(params, seed))

    def build(self, params, seed, in_channels, num_classes=None) -> Backbone:
        for key, lo in (("width", 2), ("depth", 1)):
            if params[key] < lo:
                raise bad_param(self.name, key, params[key], f"an integer >= {lo}")
        if params["width"] % 2:
            raise bad_param(self.name, "width", params["width"], "an even integer (FactorizedReduce halves it)")
        normal, reduce = self.genotype(params, seed)
        net = NDSNet(normal, reduce, self.space, in_channels, params["width"], params["depth"], num_classes)
        net.structure = format_genotype(normal, reduce)
        return net

    def measures(self, params, seed) -> dict[str, float]:
        return {}

    # ---- the encoding (unnas.generators.encoding): per node, DARTS-like spaces (two distinct
    # inputs) give [input pair, op on the lower input, op on the higher input]; the others give
    # [input, op, input, op] in edge order. Normal cell, then reduction cell (PNAS: one cell).
    def cardinalities(self, base: Mapping[str, Any] | None = None) -> list[int]:
        if (base or {}).get("genotype"):
            raise fixed_in_base(self.name, "genotype", base)
        sp, n_ops = self.space, len(self.space.ops)
        cell = []
        for k in range(sp.nodes):
            cell += [len(pairs(k + 2)), n_ops, n_ops] if sp.distinct_inputs else [k + 2, n_ops, k + 2, n_ops]
        return cell * (1 if sp.shared_reduce else 2)

    def encode(self, params: Mapping[str, Any], seed: int = 0) -> list[int]:
        normal, reduce = self.genotype(params, seed)
        if self.space.shared_reduce and reduce != normal:
            raise bad_param(self.name, "genotype", format_genotype(normal, reduce),
                            "one cell for both (this space shares the normal cell with the reduction cell)")
        codes = []
        for cell in (normal,) if self.space.shared_reduce else (normal, reduce):
            codes += self._encode_cell(cell)
        return codes

    def _encode_cell(self, cell: Cell) -> list[int]:
        ops, codes = self.space.ops, []
        for k in range(self.space.nodes):
            (op_a, a), (op_b, b) = cell[2 * k], cell[2 * k + 1]
            if not self.space.distinct_inputs:
                codes += [a, ops.index(op_a), b, ops.index(op_b)]
                continue
            if a == b:
                raise bad_param(self.name, "genotype", format_genotype(cell, cell),
                                "two different inputs per node (as DARTS derives them)",
                                message=f"node {k} reads input {a} twice")
            (op_lo, lo), (op_hi, hi) = sorted([(op_a, a), (op_b, b)], key=lambda e: e[1])
            codes += [pairs(k + 2).index((lo, hi)), ops.index(op_lo), ops.index(op_hi)]
        return codes

    def decode(self, codes: Sequence[int], base: Mapping[str, Any] | None = None) -> dict:
        codes = check_codes(self.name, codes, self.cardinalities(base))
        ops, cells, pos = self.space.ops, [], 0
        for _ in range(1 if self.space.shared_reduce else 2):
            edges = []
            for k in range(self.space.nodes):
                if self.space.distinct_inputs:
                    lo, hi = pairs(k + 2)[codes[pos]]
                    edges += [(ops[codes[pos + 1]], lo), (ops[codes[pos + 2]], hi)]
                    pos += 3
                else:
                    edges += [(ops[codes[pos + 1]], codes[pos]), (ops[codes[pos + 3]], codes[pos + 2])]
                    pos += 4
            cells.append(tuple(edges))
        return self.resolve({**(base or {}), "genotype": format_genotype(cells[0], cells[-1])})


def _register(space_name: str) -> None:
    cls = type(f"NDS_{space_name}", (_NDS,), {
        "name": f"nds-{space_name}", "space_name": space_name,
        "__doc__": f"NDS {space_name} cell space (normal + reduction cells drawn from the seed, or ``genotype``)."})
    GENERATORS.add(f"nds-{space_name}", cls)
    globals()[cls.__name__] = cls


for _name in SPACES:
    _register(_name)
