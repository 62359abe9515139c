"""Relational graphs (You, Leskovec, He, Xie 2020, "Graph structure of neural networks").

A layer's ``W`` channels are split into ``n`` node groups as evenly as possible (the first
``W % n`` groups one channel larger). Output group ``i`` reads input group ``j`` only when
``i == j`` or ``(i, j)`` is an edge of the relational graph: the dense weight is masked by the
graph's block adjacency with self-loops. Masked layers store only the unmasked weights, so a
network's ``sum(p.numel())`` is its real parameter count. FLOPs measured by
:mod:`unnas.generators.complexity` count the dense product that actually runs; the effective
(masked) multiply-adds are in :func:`effective_macs` of each network.

The graph is WS-flex(n, k, p) (:func:`unnas.generators.graphs.ws_flex`) drawn from the spec
seed; the same graph is used by every relational layer, as in the paper. ``k = n - 1`` gives
the complete graph, i.e. the ordinary dense network.

With ``match_flops`` (the paper's protocol) the relational width is the smallest width at or
above ``width`` whose effective multiply-adds reach those of the complete-graph network of
width ``width``, so all graphs are compared at (just above) equal compute.

* ``relational-mlp``: the CIFAR MLP of the paper: input (adaptively average-pooled to
  ``resolution`` x ``resolution``; 32 = the paper's full CIFAR input) -> dense linear to
  ``width`` -> BN -> ReLU, then ``layers`` relational linear layers (each + BN + ReLU). With the
  classifier that is the paper's 5-layer MLP at ``layers=3`` (paper: width 512, n = 64).
  It has no spatial map (``has_spatial = False``).
* ``relational-resnet``: a CIFAR ResNet whose 3x3 convolutions are relational (stem and
  1x1 projection shortcuts stay dense); stage widths ``w, 2w, 4w``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unnas.generators import graphs
from unnas.generators.layers import bad_param, sample_space
from unnas.registry import GENERATORS
from unnas.spec import Backbone, Generator


# ------------------------------------------------------------------------------ masks
def group_sizes(channels: int, n: int) -> np.ndarray:
    """Channels per node: ``channels`` split into ``n`` groups, the first ``channels % n`` larger."""
    return np.array([channels // n + (1 if i < channels % n else 0) for i in range(n)], dtype=np.int64)


def adjacency(g: nx.Graph) -> np.ndarray:
    """Boolean ``(n, n)`` adjacency with self-loops, nodes in sorted order."""
    nodes = sorted(g.nodes)
    a = nx.to_numpy_array(g, nodelist=nodes, dtype=bool)
    return a | np.eye(len(nodes), dtype=bool)


def block_mask(adj: np.ndarray, out_channels: int, in_channels: int) -> np.ndarray:
    """``(out, in)`` boolean mask: output channel of group i sees input channel of group j iff adj[i, j]."""
    n = adj.shape[0]
    so, si = group_sizes(out_channels, n), group_sizes(in_channels, n)
    return np.repeat(np.repeat(adj, so, axis=0), si, axis=1)


def mask_nnz(adj: np.ndarray, out_channels: int, in_channels: int) -> int:
    n = adj.shape[0]
    return int(group_sizes(out_channels, n) @ adj.astype(np.int64) @ group_sizes(in_channels, n))


class _Masked(nn.Module):
    """Shared part of the masked layers: compact weights scattered into a dense tensor."""

    def _setup(self, dense: torch.Tensor, mask: np.ndarray) -> None:
        m = torch.from_numpy(mask)
        self.register_buffer("mask", m, persistent=False)
        self.weight = nn.Parameter(dense[m].clone())
        self.dense_shape = tuple(dense.shape)

    def dense_weight(self) -> torch.Tensor:
        w = self.weight.new_zeros(self.dense_shape)
        return w.masked_scatter(self.mask.view(*self.mask.shape, *([1] * (len(self.dense_shape) - 2)))
                                .expand(self.dense_shape), self.weight)


class MaskedLinear(_Masked):
    """Linear layer (no bias) whose ``(out, in)`` weight is zero outside ``mask``."""

    def __init__(self, in_features: int, out_features: int, mask: np.ndarray):
        super().__init__()
        dense = torch.empty(out_features, in_features)
        nn.init.kaiming_uniform_(dense, a=math.sqrt(5))
        self._setup(dense, mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dense_weight())


class MaskedConv2d(_Masked):
    """k x k convolution (no bias) whose ``(out, in)`` channel pairs outside ``mask`` are zero."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, mask: np.ndarray):
        super().__init__()
        dense = torch.empty(cout, cin, kernel, kernel)
        nn.init.kaiming_normal_(dense, mode="fan_out", nonlinearity="relu")
        self._setup(dense, mask)
        self.stride, self.padding = stride, kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.dense_weight(), None, self.stride, self.padding)


def match_width(base: int, macs) -> int:
    """Smallest width ``w >= base`` with ``macs(w, sparse=True) >= macs(base, sparse=False)``."""
    target = macs(base, False)
    w = base
    while macs(w, True) < target:
        w += 1
        if w > 64 * base:  # cannot happen for a graph with self-loops; guards an endless loop
            raise RuntimeError("width matching did not converge")
    return w


# ---------------------------------------------------------------------------- networks
class RelationalMLP(Backbone):
    has_spatial = False

    def __init__(self, adj: np.ndarray, in_channels: int, resolution: int, width: int, rel_width: int,
                 layers: int, num_classes: int | None):
        super().__init__()
        self.resolution = resolution
        d_in = in_channels * resolution * resolution
        self.stem = nn.Sequential(nn.Linear(d_in, width, bias=False), nn.BatchNorm1d(width), nn.ReLU())
        blocks, d = [], width
        for _ in range(layers):
            blocks += [MaskedLinear(d, rel_width, block_mask(adj, rel_width, d)), nn.BatchNorm1d(rel_width), nn.ReLU()]
            d = rel_width
        self.layers = nn.Sequential(*blocks)
        self.num_features = d
        self.set_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.resolution, self.resolution):
            x = F.adaptive_avg_pool2d(x, self.resolution)
        return self.layers(self.stem(x.flatten(1)))


class RelationalBlock(nn.Module):
    def __init__(self, adj: np.ndarray, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = MaskedConv2d(cin, cout, 3, stride, block_mask(adj, cout, cin))
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = MaskedConv2d(cout, cout, 3, 1, block_mask(adj, cout, cout))
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + (x if self.short is None else self.short(x)))


class RelationalResNet(Backbone):
    def __init__(self, adj: np.ndarray, in_channels: int, stem_width: int, width: int, depths: list[int],
                 num_classes: int | None):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(stem_width), nn.ReLU())
        blocks, cin = [], stem_width
        for s, d in enumerate(depths):
            cout = width * 2 ** s
            for b in range(d):
                blocks.append(RelationalBlock(adj, cin, cout, 2 if (b == 0 and s > 0) else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.num_features = cin
        self.set_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


# --------------------------------------------------------------------------- generators
class _Relational(Generator):
    """Shared graph handling; ``space`` is what population sampling draws (k and p of WS-flex)."""

    graph_defaults = {"nodes": 16, "k": 6.0, "p": 0.5, "match_flops": True}

    def check(self, params: Mapping[str, Any]) -> None:
        n = params["nodes"]
        if n < 3:
            raise bad_param(self.name, "nodes", n, "an integer >= 3")
        if not 2.0 <= params["k"] <= n - 1:
            raise bad_param(self.name, "k", params["k"], f"a real average degree in [2, nodes-1] = [2, {n - 1}]")
        if not 0.0 <= params["p"] <= 1.0:
            raise bad_param(self.name, "p", params["p"], "a probability in [0, 1]")
        if params["width"] < n:
            raise bad_param(self.name, "width", params["width"], f"an integer >= nodes ({n})",
                            message="every node needs at least one channel")

    def graph(self, params: Mapping[str, Any], seed: int) -> nx.Graph:
        self.check(params)
        return graphs.ws_flex(params["nodes"], float(params["k"]), float(params["p"]), seed=graphs.sub_seed(seed, 0))

    def sample_params(self, rng: np.random.Generator, base: Mapping[str, Any] | None = None) -> dict:
        base = dict(base or {})
        n = base.get("nodes", self.defaults["nodes"])
        space = {"k": ("uniform_float", 2.0, float(n - 1)), "p": ("uniform_float", 0.0, 1.0)}
        return self.resolve({**sample_space(rng, space, base), **base})

    def uses_seed(self, params: Mapping[str, Any]) -> bool:
        return True

    def measures(self, params, seed) -> dict[str, float]:
        g = self.graph(params, seed)
        n = g.number_of_nodes()
        return {"C": graphs.clustering(g), "L": graphs.path_length(g),
                "density": float((2 * g.number_of_edges() + n) / n ** 2)}

    @staticmethod
    def _structure(g: nx.Graph) -> str:
        return f"{g.number_of_nodes()}:" + ",".join(f"{a}-{b}" for a, b in sorted(tuple(sorted(e)) for e in g.edges))


@GENERATORS.register("relational-mlp")
class RelationalMLPGenerator(_Relational):
    """Graph2NN's MLP on a WS-flex relational graph (paper: width 512, nodes 64, resolution 32)."""

    name = "relational-mlp"
    defaults = {**_Relational.graph_defaults, "width": 64, "layers": 3, "resolution": 16}

    def widths(self, params: Mapping[str, Any], adj: np.ndarray) -> int:
        """The relational width. The dense stem (input x width) is the same for every graph and
        is left out of the matched multiply-adds."""
        w, layers = params["width"], params["layers"]

        def macs(rw: int, sparse: bool) -> int:
            a = adj if sparse else np.ones_like(adj)
            return mask_nnz(a, rw, w) + (layers - 1) * mask_nnz(a, rw, rw)

        return match_width(w, macs) if params["match_flops"] and layers > 0 else w

    def build(self, params, seed, in_channels, num_classes=None) -> Backbone:
        if params["layers"] < 1:
            raise bad_param(self.name, "layers", params["layers"], "an integer >= 1")
        if params["resolution"] < 1:
            raise bad_param(self.name, "resolution", params["resolution"], "an integer >= 1")
        g = self.graph(params, seed)
        adj = adjacency(g)
        net = RelationalMLP(adj, in_channels, params["resolution"], params["width"], self.widths(params, adj),
                            params["layers"], num_classes)
        net.structure = self._structure(g)
        return net


@GENERATORS.register("relational-resnet")
class RelationalResNetGenerator(_Relational):
    """CIFAR ResNet with relational 3x3 convolutions (stage widths w, 2w, 4w; stem ``width``).

    Effective multiply-adds for width matching are counted at a 32x32 input."""

    name = "relational-resnet"
    defaults = {**_Relational.graph_defaults, "nodes": 8, "width": 16, "depths": [1, 1, 1]}

    def widths(self, params: Mapping[str, Any], adj: np.ndarray) -> int:
        w0, depths = params["width"], list(params["depths"])

        def macs(w: int, sparse: bool) -> int:
            a = adj if sparse else np.ones_like(adj)
            total, cin, res = 0, w0, 32
            for s, d in enumerate(depths):
                cout = w * 2 ** s
                for b in range(d):
                    if b == 0 and s > 0:
                        res = (res + 1) // 2
                    total += 9 * res * res * (mask_nnz(a, cout, cin) + mask_nnz(a, cout, cout))
                    if cin != cout or (b == 0 and s > 0):
                        total += res * res * cin * cout
                    cin = cout
            return total

        return match_width(w0, macs) if params["match_flops"] else w0

    def build(self, params, seed, in_channels, num_classes=None) -> Backbone:
        depths = list(params["depths"])
        if not depths or any(not isinstance(d, int) or d < 1 for d in depths):
            raise bad_param(self.name, "depths", params["depths"], "a non-empty list of integers >= 1")
        g = self.graph(params, seed)
        adj = adjacency(g)
        net = RelationalResNet(adj, in_channels, params["width"], self.widths(params, adj), depths, num_classes)
        net.structure = self._structure(g)
        return net


def effective_macs(net: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-adds of one forward pass counting only unmasked weights of masked layers
    (dense layers count fully); biases, normalization and pooling are not counted."""
    total = 0
    hooks = []

    def hook(mod, inp, out):
        nonlocal total
        spatial = out.shape[2] * out.shape[3] if out.dim() == 4 else 1
        if isinstance(mod, _Masked):
            total += mod.weight.numel() * spatial
        elif isinstance(mod, (nn.Conv2d, nn.Linear)):
            total += mod.weight.numel() * spatial

    for m in net.modules():
        if isinstance(m, (_Masked, nn.Conv2d, nn.Linear)):
            hooks.append(m.register_forward_hook(hook))
    was = net.training
    net.eval()
    try:
        with torch.no_grad():
            net.forward_features(torch.zeros(input_shape))
    finally:
        net.train(was)
        for h in hooks:
            h.remove()
    return int(total)
