"""The size baselines as proxies: the backbone's parameter count and FLOPs per input image
(:mod:`unnas.generators.complexity`: convolutions and matrix products, a multiply-add counted as
two FLOPs). Both span decades across design spaces, so both are ``log_scale``."""

from __future__ import annotations

from unnas.eval.proxies.base import ProxyInput, backbone_copy

from unnas.generators.complexity import count_flops, count_params
from unnas.registry import PROXIES


@PROXIES.register("params", log_scale=True, needs_loss=False)
def params(x: ProxyInput, options=None) -> float:
    return float(count_params(x.backbone))


@PROXIES.register("flops", log_scale=True, needs_loss=False)
def flops(x: ProxyInput, options=None) -> float:
    # on a copy: counting switches the network to eval mode and back
    return float(count_flops(backbone_copy(x), tuple(x.inputs(1).shape)))
