"""Zen-score (Lin et al., ICCV 2021, Zen-NAS): the expressivity of a network with Gaussian weights.

As in the authors' ``compute_zen_score``: on a copy of the backbone in training mode, ``repeats``
times: every convolution and linear weight re-drawn from N(0, 1) with zero biases and unit-weight,
zero-bias BatchNorm/GroupNorm (:func:`unnas.eval.proxies.patterns.gaussian_init`), two batches of
``batch_size`` N(0, 1) images ``x`` and ``x + mixup_gamma * x2``; with ``f`` the backbone's
unpooled feature map (``forward_features``, the authors' ``forward_pre_GAP``), the repeat scores
``log mean_i sum |f(x_i) - f(x'_i)| + sum over BatchNorm2d of log sqrt(mean running_var)``; the
proxy is the mean over the repeats. The running variances are those the forward passes leave
(the copy starts from the backbone's own statistics, BatchNorm's momentum applies), as in their
code. No loss, no label, no real image: every draw comes from the proxy's generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from unnas.eval.proxies.base import ProxyInput, backbone_copy, check_positive
from unnas.eval.proxies.patterns import gaussian_init

from unnas.errors import UserError
from unnas.registry import PROXIES


@dataclass(frozen=True)
class ZenOptions:
    batch_size: int = 16
    repeats: int = 32
    mixup_gamma: float = 1e-2

    def __post_init__(self):
        check_positive("zen", batch_size=self.batch_size, repeats=self.repeats)
        if not (isinstance(self.mixup_gamma, (int, float)) and self.mixup_gamma > 0):
            raise UserError("proxy zen option mixup_gamma", self.mixup_gamma, "a number > 0")

    def images_needed(self) -> int:
        """Gaussian inputs read only the data's shape (one image)."""
        return 1


@PROXIES.register("zen", log_scale=False, needs_loss=False, config=ZenOptions)
def zen(x: ProxyInput, options: ZenOptions) -> float:
    net = backbone_copy(x)
    shape = (options.batch_size, *x.inputs(1).shape[1:])
    g = x.generator
    scores = []
    with torch.no_grad():
        for _ in range(options.repeats):
            gaussian_init(net, g)
            a = torch.randn(shape, generator=g, device=g.device).to(x.device)
            b = torch.randn(shape, generator=g, device=g.device).to(x.device)
            diff = (net.forward_features(a) - net.forward_features(a + options.mixup_gamma * b)).abs()
            score = torch.log(diff.flatten(1).sum(1).mean())
            for m in net.modules():
                if isinstance(m, nn.BatchNorm2d):
                    score = score + torch.log(torch.sqrt(torch.mean(m.running_var)))
            scores.append(float(score))
    return math.fsum(scores) / len(scores)
