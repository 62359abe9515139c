"""ZiCo (Li et al., ICLR 2023) on the objective's label-free loss.

For every convolution and linear layer, the gradient of the loss with respect to each weight is
taken on ``batches`` separate batches; with ``mean|g|`` and ``std g`` (population standard
deviation) over the batches, the layer contributes ``log sum(mean|g| / std g)`` over its weights
whose ``std`` is not zero (a layer where that sum is 0 contributes nothing); the score is the sum
over layers. As in the authors' search scripts: 2 batches of 128 images, a copy of the whole
objective in training mode. The reference uses the class labels' cross-entropy; here the loss is
the objective's pretext loss, so no label is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from unnas.eval.proxies.base import ProxyInput, check_positive, loss_gradients, objective_copy, weight_layers

from unnas.errors import UserError
from unnas.registry import PROXIES


@dataclass(frozen=True)
class ZicoOptions:
    batch_size: int = 128
    batches: int = 2

    def __post_init__(self):
        check_positive("zico", batch_size=self.batch_size, batches=self.batches)
        if self.batches < 2:
            raise UserError("proxy zico option batches", self.batches, "2 or more (a standard deviation over batches)")


def inverse_cv_score(per_layer: list[torch.Tensor]) -> float:
    """``sum_l log sum(mean|g| / std g)`` of gradients stacked per layer as ``(batches, weights)``."""
    total = 0.0
    for g in per_layer:
        std = g.std(dim=0, unbiased=False)
        keep = std != 0
        s = float((g.abs().mean(dim=0)[keep] / std[keep]).sum())
        if s != 0:
            total += math.log(s)
    return total


@PROXIES.register("zico", log_scale=False, needs_loss=True, config=ZicoOptions)
def zico(x: ProxyInput, options: ZicoOptions) -> float:
    obj = objective_copy(x)
    layers = weight_layers(obj)
    images = x.batch(options.batch_size * options.batches)
    rows = [[] for _ in layers]
    for b in range(options.batches):
        chunk = images[b * options.batch_size:(b + 1) * options.batch_size]
        for row, g in zip(rows, loss_gradients(obj, chunk, x.generator, layers)):
            row.append(g.detach().double().flatten())
    return inverse_cv_score([torch.stack(r) for r in rows])
