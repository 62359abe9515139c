"""RandWire (Xie et al. 2019): stages wired by a random graph turned into a DAG.

Generators ``randwire-ws``, ``randwire-er``, ``randwire-ba`` differ only in the random graph
(graphs.ws / er / ba); one graph per stage, each from its own derived seed.

Node = weighted sum of its inputs (positive weights through a sigmoid) -> ReLU -> 3x3 separable
conv -> BN. Source nodes read the stage input (stride 2 in down-sampling stages); the stage
output averages the sink nodes. The CIFAR-sized network: 3x3 conv stem, ``stages`` random stages
with widths C, 2C, 4C, ... (down-sampling from the second stage on), then BN-ReLU and global
pooling. ``stem="imagenet"`` uses the paper's stride-4 stem for large images.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from unnas.generators import graphs
from unnas.generators.layers import bad_param, sample_space
from unnas.registry import GENERATORS
from unnas.spec import Backbone, Generator


class SepConv(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.pw(self.dw(torch.relu(x))))


class Node(nn.Module):
    def __init__(self, n_inputs: int, cin: int, cout: int, stride: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(n_inputs)) if n_inputs > 1 else None
        self.op = SepConv(cin, cout, stride)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        if self.weights is None:
            x = inputs[0]
        else:
            w = torch.sigmoid(self.weights)
            x = sum(w[i] * t for i, t in enumerate(inputs))
        return self.op(x)


class RandomStage(nn.Module):
    def __init__(self, dag: graphs.DAG, cin: int, cout: int, stride: int):
        super().__init__()
        self.dag = dag
        self.nodes = nn.ModuleList(
            Node(max(1, len(dag.preds[i])), cin if not dag.preds[i] else cout, cout,
                 stride if not dag.preds[i] else 1)
            for i in range(dag.n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for i, node in enumerate(self.nodes):
            preds = self.dag.preds[i]
            outs.append(node([x] if not preds else [outs[j] for j in preds]))
        sinks = self.dag.sinks
        return torch.stack([outs[i] for i in sinks]).mean(0) if len(sinks) > 1 else outs[sinks[0]]


class RandWireNet(Backbone):
    def __init__(self, dags: list[graphs.DAG], in_channels: int, channels: int, stem: str,
                 num_classes: int | None):
        super().__init__()
        c = channels
        if stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, c // 2, 3, 2, 1, bias=False), nn.BatchNorm2d(c // 2),
                SepConv(c // 2, c, 2))
        else:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        stages = []
        cin = c
        for s, dag in enumerate(dags):
            cout = c * 2 ** s
            stages.append(RandomStage(dag, cin, cout, 1 if (s == 0 and stem != "imagenet") else 2))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.final = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=False))
        self.num_features = cin
        self.set_classifier(num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.stages(self.stem(x)))


class _RandWire(Generator):
    """Common part of the ER / BA / WS variants; ``graph(n, params, seed)`` differs.

    Stage ``s`` uses the graph drawn with seed ``sub_seed(seed, s)``. ``space`` lists how
    population sampling draws the parameters not fixed in ``model.params`` (layers.draw specs);
    ``space_for(base)`` drops the values a fixed ``nodes`` makes invalid.
    """

    common = {"nodes": 8, "channels": 16, "stages": 3, "stem": "small"}
    space: dict[str, Any] = {}

    def graph(self, n: int, params: Mapping[str, Any], seed: int):
        raise TypeError(f"{type(self).__name__} does not define graph")

    def space_for(self, nodes: int) -> dict[str, Any]:
        return dict(self.space)

    def check(self, params: Mapping[str, Any]) -> None:
        if params["stem"] not in ("small", "imagenet"):
            raise bad_param(self.name, "stem", params["stem"], ["small", "imagenet"])
        for key, lo in (("nodes", 2), ("channels", 2), ("stages", 1)):
            if params[key] < lo:
                raise bad_param(self.name, key, params[key], f"an integer >= {lo}")
        if params["stem"] == "imagenet" and params["channels"] % 2:
            raise bad_param(self.name, "channels", params["channels"], "an even width with stem=imagenet")

    def graphs(self, params: Mapping[str, Any], seed: int) -> list:
        self.check(params)
        try:
            return [self.graph(params["nodes"], params, graphs.sub_seed(seed, s)) for s in range(params["stages"])]
        except ValueError as e:  # graph parameters out of range
            raise bad_param(self.name, "graph", {k: params[k] for k in self.defaults if k not in self.common},
                            None, message=str(e)) from None

    def dags(self, params: Mapping[str, Any], seed: int) -> list[graphs.DAG]:
        return [graphs.to_dag(g) for g in self.graphs(params, seed)]

    def sample_params(self, rng: np.random.Generator, base: Mapping[str, Any] | None = None) -> dict:
        base = dict(base or {})
        nodes = base.get("nodes", self.defaults["nodes"])
        return self.resolve({**sample_space(rng, self.space_for(nodes), base), **base})

    def uses_seed(self, params: Mapping[str, Any]) -> bool:
        return True

    def build(self, params, seed, in_channels, num_classes=None) -> Backbone:
        dags = self.dags(params, seed)
        net = RandWireNet(dags, in_channels, params["channels"], params["stem"], num_classes)
        net.structure = " | ".join(d.describe() for d in dags)
        return net

    def measures(self, params, seed) -> dict[str, float]:
        gs = self.graphs(params, seed)
        return {"C": float(np.mean([graphs.clustering(g) for g in gs])),
                "L": float(np.mean([graphs.path_length(g) for g in gs]))}


_WIDTHS = ("choice", [8, 12, 16, 24])


@GENERATORS.register("randwire-ws")
class RandWireWS(_RandWire):
    """RandWire with Watts-Strogatz graphs WS(K, P) (paper: K=4, P=0.75, N=32 nodes).
    Population sampling draws K, P and the width unless they are fixed in ``model.params``."""

    name = "randwire-ws"
    defaults = {**_RandWire.common, "k": 4, "p": 0.75}
    space = {"k": ("choice", [2, 4, 6]), "p": ("uniform_float", 0.0, 1.0), "channels": _WIDTHS}

    def space_for(self, nodes):
        ks = [k for k in (2, 4, 6, 8) if k < nodes] or [2]
        return {**self.space, "k": ("choice", ks[:3])}

    def graph(self, n, params, seed):
        return graphs.ws(n, params["k"], params["p"], seed=seed)


@GENERATORS.register("randwire-er")
class RandWireER(_RandWire):
    """RandWire with Erdos-Renyi graphs ER(P) (paper: P=0.2, N=32 nodes). Population sampling
    draws P in [0.1, 0.5] and the width unless fixed."""

    name = "randwire-er"
    defaults = {**_RandWire.common, "p": 0.2}
    space = {"p": ("uniform_float", 0.1, 0.5), "channels": _WIDTHS}

    def graph(self, n, params, seed):
        return graphs.er(n, params["p"], seed=seed)


@GENERATORS.register("randwire-ba")
class RandWireBA(_RandWire):
    """RandWire with Barabasi-Albert graphs BA(M) (paper: M=5, N=32 nodes). Population sampling
    draws M in 1..min(7, N-1) and the width unless fixed."""

    name = "randwire-ba"
    defaults = {**_RandWire.common, "m": 5}
    space = {"m": ("choice", [1, 2, 3, 4, 5, 6, 7]), "channels": _WIDTHS}

    def space_for(self, nodes):
        return {**self.space, "m": ("choice", list(range(1, max(2, min(8, nodes)))))}

    def graph(self, n, params, seed):
        return graphs.ba(n, params["m"], seed=seed)
