"""RandWire (Xie et al. 2019): stages wired by a random graph turned into a DAG.

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
    """Common part of the ER / BA / WS variants: ``graph(n, params, seed)`` differs."""

    common = {"nodes": 8, "channels": 16, "stages": 3, "stem": "small"}
    space: dict[str, Any] = {}

    def graph(self, n: int, params: Mapping[str, Any], seed: int):
        raise TypeError(f"{type(self).__name__} does not define graph")

    def dags(self, params: Mapping[str, Any], seed: int) -> list[graphs.DAG]:
        return [graphs.to_dag(self.graph(params["nodes"], params, graphs.sub_seed(seed, s)))
                for s in range(params["stages"])]

    def sample_params(self, rng: np.random.Generator, base: Mapping[str, Any] | None = None) -> dict:
        out = {}
        for k, choice in self.space.items():
            if base and k in base:
                continue
            if isinstance(choice, tuple):
                out[k] = float(rng.uniform(*choice))
            else:
                out[k] = choice[int(rng.integers(len(choice)))]
        return self.resolve({**out, **(base or {})})

    def build(self, params, seed, in_channels, num_classes=None) -> Backbone:
        if params["stem"] not in ("small", "imagenet"):
            from unnas.errors import UserError
            raise UserError(f"generator {self.name} parameter stem", params["stem"], ["small", "imagenet"])
        return RandWireNet(self.dags(params, seed), in_channels, params["channels"], params["stem"], num_classes)

    def measures(self, params, seed) -> dict[str, float]:
        gs = [self.graph(params["nodes"], params, graphs.sub_seed(seed, s)) for s in range(params["stages"])]
        return {"C": float(np.mean([graphs.clustering(g) for g in gs])),
                "L": float(np.mean([graphs.path_length(g) for g in gs]))}


@GENERATORS.register("randwire-ws")
class RandWireWS(_RandWire):
    """RandWire with Watts-Strogatz graphs WS(k, p). Population sampling draws k, p and the width
    unless they are fixed in ``model.params``."""

    name = "randwire-ws"
    defaults = {**_RandWire.common, "k": 4, "p": 0.75}
    space = {"k": [2, 4, 6], "p": (0.0, 1.0), "channels": [8, 12, 16, 24]}

    def graph(self, n, params, seed):
        return graphs.ws(n, params["k"], params["p"], seed=seed)
