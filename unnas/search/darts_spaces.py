"""DARTS supernets: every discrete choice of a space becomes a mixed operation.

A :class:`MixedOp` computes ``sum_o w_o * op_o(x)`` with ``w = softmax(alpha)`` of its row of
architecture parameters. The operations are the generators' own (:func:`unnas.generators.nds.make_op`,
:func:`unnas.generators.nb201.make_op`, :func:`unnas.generators.macro.make_layer`), inside the
generators' own network skeletons.

* ``nds-darts``: the DARTS search cell. Four nodes, each the sum of mixed operations over the
  two cell inputs and the earlier nodes (2 + 3 + 4 + 5 = 14 edges, 8 operations including
  ``none``), pools followed by a BN, every BN of the operations and of the cell inputs' preprocessing
  non-affine as in DARTS; one ``alpha`` group for normal cells and
  one for reduction cells (14 x 8 each). Genotype: for every node the two inputs whose strongest
  non-``none`` operation weighs most, each with that operation (:func:`derive_genotype`).
* ``nb201``: one mixed operation per edge (6 x 5, shared by every cell), non-affine BNs as in
  NAS-Bench-201's DARTS baseline; the derived cell takes the
  argmax of each edge, ``none`` included, as NAS-Bench-201's own DARTS baseline does.
* ``macro``: one mixed layer per searchable layer (8 x 3); the derived network takes the argmax of
  each layer.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from torch import nn

from unnas.generators import macro, nb201, nds
from unnas.search.base import ArchContext, Supernet
from unnas.spec import ArchSpec

DARTS_OPS = nds.SPACES["darts"].ops
DARTS_NODES = nds.SPACES["darts"].nodes


def without_affine(module: nn.Module) -> nn.Module:
    """``module`` with every affine BatchNorm replaced by a non-affine one (same statistics settings).
    DARTS and NAS-Bench-201's DARTS baseline build every search operation with ``affine=False``: a
    learned BN scale would let an operation's weights rescale its output and so compete with its
    ``alpha`` for the mixing weight."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and child.affine:
            setattr(module, name, nn.BatchNorm2d(child.num_features, child.eps, child.momentum, affine=False,
                                                 track_running_stats=child.track_running_stats))
        else:
            without_affine(child)
    return module


class MixedOp(nn.Module):
    """``sum_o w_o * ops[o](x)`` with ``w`` = row ``index`` of group ``group`` of the context."""

    def __init__(self, ops: Sequence[nn.Module], ctx: ArchContext, group: str, index: int):
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self.ctx, self.group, self.index = ctx, group, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.ctx[self.group][self.index]
        out = w[0] * self.ops[0](x)
        for i in range(1, len(self.ops)):
            out = out + w[i] * self.ops[i](x)
        return out


# ------------------------------------------------------------------------------ DARTS cells
def darts_op(name: str, c: int, stride: int) -> nn.Module:
    """A DARTS search operation: the NDS operation, pools followed by a BN, every BN non-affine."""
    op = without_affine(nds.make_op(name, c, stride))
    if "pool" in name:
        return nn.Sequential(op, nn.BatchNorm2d(c, affine=False))
    return op


def n_edges(nodes: int = DARTS_NODES) -> int:
    return sum(k + 2 for k in range(nodes))


class DartsSearchCell(nn.Module):
    def __init__(self, ctx: ArchContext, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.pre0 = without_affine(nds.preprocess(c_pp, c, reduction_prev))  # DARTS: affine=False here too
        self.pre1 = without_affine(nds.preprocess(c_p, c, False))
        group = "reduce" if reduction else "normal"
        edges, e = [], 0
        for k in range(DARTS_NODES):
            for j in range(k + 2):
                stride = 2 if reduction and j < 2 else 1
                edges.append(MixedOp([darts_op(o, c, stride) for o in DARTS_OPS], ctx, group, e))
                e += 1
        self.edges = nn.ModuleList(edges)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        e = 0
        for _ in range(DARTS_NODES):
            node = self.edges[e](states[0])
            for j in range(1, len(states)):
                node = node + self.edges[e + j](states[j])
            e += len(states)
            states.append(node)
        return torch.cat(states[2:], dim=1)


def derive_cell(weights: torch.Tensor, ops: Sequence[str] = DARTS_OPS, nodes: int = DARTS_NODES) -> nds.Cell:
    """DARTS's genotype of one cell from its ``(edges, ops)`` mixing weights: for node ``k`` (edges
    from inputs ``0..k+1``), the two inputs whose strongest non-``none`` operation weighs most
    (ties: the lower input), each with that operation; listed by input."""
    real = [i for i, o in enumerate(ops) if o != "none"]
    w = weights.detach().float()[:, real]
    cell, e = [], 0
    for k in range(nodes):
        n_in = k + 2
        rows = w[e:e + n_in]
        best, arg = rows.amax(dim=1), rows.argmax(dim=1)  # argmax: the first of equal weights
        order = sorted(range(n_in), key=lambda j: (-float(best[j]), j))[:2]
        cell += [(ops[real[int(arg[j])]], j) for j in sorted(order)]
        e += n_in
    return tuple(cell)


class DartsCellSupernet(Supernet):
    def __init__(self, params: Mapping[str, Any], in_channels: int, generator: torch.Generator):
        super().__init__("nds-darts", params)
        width, depth = int(params["width"]), int(params["depth"])
        self.add_alphas("normal", n_edges(), len(DARTS_OPS), generator)
        self.add_alphas("reduce", n_edges(), len(DARTS_OPS), generator)
        self.stem = nds.stem(in_channels, width)
        plan = nds.cell_plan(depth, width, lambda red: DARTS_NODES)
        self.cells = nn.ModuleList(DartsSearchCell(self.ctx, *p) for p in plan)
        self.num_features = plan[-1][2] * DARTS_NODES
        self.set_classifier(None)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return s1

    def derive(self) -> ArchSpec:
        w = self.mixing_weights()
        genotype = nds.format_genotype(derive_cell(w["normal"]), derive_cell(w["reduce"]))
        return ArchSpec("nds-darts", {**self.base_params, "genotype": genotype}, 0)


# ------------------------------------------------------------------------------ NAS-Bench-201
class NB201Supernet(Supernet):
    def __init__(self, params: Mapping[str, Any], in_channels: int, generator: torch.Generator):
        super().__init__("nb201", params)
        c = int(round(16 * params["width"]))
        if c < 1 or params["cells"] < 1:
            nb201.NB201().build(params, 0, in_channels)  # the generator's own parameter errors
        self.add_alphas("edges", len(nb201.EDGES), len(nb201.OPS), generator)

        def cell(width: int) -> nn.Module:
            return nb201.Cell([MixedOp([without_affine(nb201.make_op(o, width)) for o in nb201.OPS], self.ctx, "edges", e)
                               for e in range(len(nb201.EDGES))])

        self.net = nb201.NB201Net(cell, in_channels, c, int(params["cells"]), None)
        self.num_features = self.net.num_features
        self.set_classifier(None)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)

    def derive(self) -> ArchSpec:
        arg = self.alphas["edges"].detach().argmax(dim=1).tolist()
        return ArchSpec("nb201", {**self.base_params, "arch": nb201.to_str([nb201.OPS[i] for i in arg])}, 0)


# ------------------------------------------------------------------------------ NAS-Bench-Macro
class MacroSupernet(Supernet):
    def __init__(self, params: Mapping[str, Any], in_channels: int, generator: torch.Generator):
        super().__init__("macro", params)
        if not params["width"] > 0:
            macro.Macro().build(params, 0, in_channels)  # the generator's own parameter error
        choices = sorted(macro.CHOICES)
        self.add_alphas("layers", sum(macro.STAGES), len(choices), generator)
        stem, stages, head = macro.widths(float(params["width"]))
        layers = [MixedOp([macro.make_layer(ch, cin, cout, s) for ch in choices], self.ctx, "layers", i)
                  for i, (cin, cout, s) in enumerate(macro.layer_plan(stem, stages))]
        self.net = macro.MacroSkeleton(in_channels, stem, layers, stages[-1], head, None)
        self.num_features = self.net.num_features
        self.set_classifier(None)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_features(x)

    def derive(self) -> ArchSpec:
        choices = sorted(macro.CHOICES)
        arch = "".join(choices[i] for i in self.alphas["layers"].detach().argmax(dim=1).tolist())
        return ArchSpec("macro", {**self.base_params, "arch": arch}, 0)


def build_darts_cells(params, in_channels, options, generator) -> Supernet:
    for key, lo in (("width", 2), ("depth", 1)):
        if params[key] < lo:
            raise nds.bad_param("nds-darts", key, params[key], f"an integer >= {lo}")
    if params["width"] % 2:
        raise nds.bad_param("nds-darts", "width", params["width"], "an even integer (FactorizedReduce halves it)")
    return DartsCellSupernet(params, in_channels, generator)


SPACES = {"nds-darts": build_darts_cells,
          "nb201": lambda params, in_channels, options, generator: NB201Supernet(params, in_channels, generator),
          "macro": lambda params, in_channels, options, generator: MacroSupernet(params, in_channels, generator)}
