"""MeCo (Jiang et al., NeurIPS 2023): the minimum eigenvalue of each layer's feature correlation.

On a copy of the backbone in training mode (BatchNorm on the batch's statistics, as the authors
run it), one forward pass of a single input; a forward hook on *every* module (containers and the
backbone itself included, as the authors hook ``named_modules()``) takes the module's output for
that one image, ``(C, H, W)`` reshaped to ``(C, H * W)``, computes the ``C x C`` Pearson
correlation between channels over the positions (undefined entries, e.g. a constant channel, set
to 0), and keeps its smallest eigenvalue. The score is the sum over every call of every module
(a module called twice counts twice). An output that is not a tensor is skipped.

No loss and no label: forward only. ``input``: ``"gaussian"`` (default; the paper's setting, one
N(0, 1) image of the data's shape drawn from the proxy's generator) or ``"data"`` (the first image
of the batch, normalized, as the authors' NAS-Bench-201 script feeds one training image).
``image_size``: the Gaussian image's side (default: the data's; the authors' generic measure draws
64 x 64 whatever the data). With one image, a BatchNorm whose input has one value per channel
(a 1 x 1 map, or a network without spatial maps) has no batch statistic: such a network is refused
with a :class:`~unnas.errors.UserError`, as the authors' code fails there.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from unnas.eval.proxies.base import ProxyInput, backbone_copy, check_positive

from unnas.errors import UserError
from unnas.registry import PROXIES

INPUTS = ("gaussian", "data")


@dataclass(frozen=True)
class MecoOptions:
    input: str = "gaussian"
    image_size: int | None = None

    def __post_init__(self):
        if self.input not in INPUTS:
            raise UserError("proxy meco option input", self.input, ", ".join(INPUTS))
        if self.image_size is not None:
            check_positive("meco", image_size=self.image_size)


def min_correlation_eigenvalue(feature: torch.Tensor) -> float:
    """Smallest eigenvalue of the channel correlation of one sample's output ``(C, ...)``."""
    fea = feature.detach().reshape(feature.shape[0], -1)
    with warnings.catch_warnings():  # one position: every correlation undefined, set to 0 below
        warnings.simplefilter("ignore", UserWarning)
        corr = torch.corrcoef(fea)
    corr = torch.where(torch.isfinite(corr), corr, torch.zeros((), dtype=corr.dtype, device=corr.device))
    return float(torch.linalg.eigvalsh(corr).min())


def single_input(x: ProxyInput, options: MecoOptions) -> torch.Tensor:
    """The one image MeCo reads: ``(1, C, H, W)``."""
    if options.input == "data":
        return x.inputs(1)
    shape = tuple(x.inputs(1).shape)
    if options.image_size is not None:
        shape = (*shape[:-2], options.image_size, options.image_size)
    return torch.randn(shape, generator=x.generator, device=x.generator.device).to(x.device)


@PROXIES.register("meco", log_scale=False, needs_loss=False, config=MecoOptions)
def meco(x: ProxyInput, options: MecoOptions) -> float:
    net = backbone_copy(x)
    values: list[float] = []

    def hook(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() >= 2:
            values.append(min_correlation_eigenvalue(output[0]))

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    try:
        with torch.no_grad():
            net(single_input(x, options))
    except ValueError as e:
        if "more than 1 value per channel" not in str(e):
            raise
        raise UserError("proxy meco network", type(x.backbone).__name__,
                        "a network whose BatchNorms see more than one value per channel for one image",
                        message=f"meco reads one image: {e}") from None
    finally:
        for h in handles:
            h.remove()
    return float(sum(v for v in values if v == v))
