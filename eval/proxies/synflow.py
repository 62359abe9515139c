"""SynFlow (Tanaka et al. 2020) as a zero-cost proxy (Abdelfattah et al. 2021), on the backbone.

On a copy of the backbone: every BatchNorm is bypassed (replaced by the identity, as the reference
code does), every parameter is replaced by its absolute value (the network is sign-linearised) and
the network runs in float64. With ``R`` the sum of the backbone's output on one all-ones input of
the backbone's input shape, the score is ``sum |theta * dR/dtheta|`` over the weights of every
convolution and linear layer. It spans tens of decades across networks, so it is ``log_scale``
(rank by ``log10``; a network with no path from input to output scores 0, ranked lowest). A value
past float64's range (1e308) is reported as not finite.
"""

from __future__ import annotations

import torch
from torch import nn
from unnas.eval.proxies.base import BATCH_NORMS, ProxyInput, backbone_copy, weight_layers

from unnas.registry import PROXIES


def bypass_batchnorm(net: nn.Module) -> nn.Module:
    """Replace every BatchNorm module of ``net`` by the identity (in place)."""
    for parent in list(net.modules()):
        for key, child in list(parent._modules.items()):
            if isinstance(child, BATCH_NORMS):
                parent._modules[key] = nn.Identity()
    return net


@PROXIES.register("synflow", log_scale=True, needs_loss=False)
def synflow(x: ProxyInput, options=None) -> float:
    shape = x.inputs(1).shape
    net = bypass_batchnorm(backbone_copy(x)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    layers = weight_layers(net)
    out = net(torch.ones(shape, dtype=torch.float64, device=x.device))
    grads = torch.autograd.grad(out.sum(), [m.weight for m in layers], allow_unused=True)
    return sum(float((m.weight.detach() * g).abs().sum()) for m, g in zip(layers, grads) if g is not None)
