"""``jacob_cov`` (Mellor et al. 2020, v1 of "Neural Architecture Search without Training"; as a
zero-cost proxy in Abdelfattah et al. 2021), on the backbone.

``J`` holds one row per image: the gradient of the sum of the backbone's outputs with respect to
that image (BatchNorm on batch statistics). With ``v`` the eigenvalues of the correlation matrix of
the rows of ``J`` and ``k = 1e-5``, the score is ``-sum(log(v + k) + 1 / (v + k))`` (higher is
better: rows that are less correlated score higher). Default batch 64, the reference's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from unnas.eval.proxies.base import ProxyInput, backbone_copy, check_positive

from unnas.errors import UserError
from unnas.registry import PROXIES


@dataclass(frozen=True)
class JacobCovOptions:
    batch_size: int = 64
    k: float = 1e-5

    def __post_init__(self):
        check_positive("jacob_cov", batch_size=self.batch_size)
        if not self.k > 0:
            raise UserError("proxy jacob_cov option k", self.k, "a positive number")


def correlation_score(jacobian: torch.Tensor, k: float) -> float:
    """``-sum(log(v + k) + 1/(v + k))`` over the eigenvalues ``v`` of ``corrcoef`` of the rows."""
    c = torch.corrcoef(jacobian.reshape(jacobian.shape[0], -1).double())
    if not bool(torch.isfinite(c).all()):  # an image whose gradient is constant: no correlation
        return float("nan")
    v = torch.linalg.eigvalsh(c)
    return -float((torch.log(v + k) + 1.0 / (v + k)).sum())


@PROXIES.register("jacob_cov", log_scale=False, needs_loss=False, config=JacobCovOptions)
def jacob_cov(x: ProxyInput, options: JacobCovOptions) -> float:
    net = backbone_copy(x)
    inputs = x.inputs(options.batch_size).detach().requires_grad_(True)
    (jac,) = torch.autograd.grad(net(inputs).sum(), inputs)
    return correlation_score(jac, options.k)
