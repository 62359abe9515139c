"""Channels-last (NHWC) training on a CPU, and the one layer shape oneDNN gets wrong in it.

oneDNN's 1x1 convolution computes a strided 1x1 layer by first copying the strided input into a
unit-stride workspace; in NHWC, for an input with fewer channels than the kernel's channel block
(8 with AVX2, 16 with AVX-512), its weight gradient writes past that workspace
(uxlfoundation/oneDNN#6035). Measured with torch 2.14.1 (oneDNN 3.12) on an AVX2-only CPU: 2 to
7 input channels, any output width, stride 2, abort with a corrupted heap within a few training
steps (NAS-Bench-Macro at width 0.125 has such a shortcut); the report also shows silently wrong
weight gradients on another CPU. :func:`to_channels_last` therefore computes every such layer as
what it is, a subsample followed by a unit-stride 1x1 convolution (:class:`SubsampledPointwiseConv2d`):
the same values and gradients, the same parameters and state-dict keys, and never that kernel.
Every other plain dense convolution becomes a :class:`~unnas.conv_grad.ShiftedGradConv2d`, whose
bfloat16 weight gradient on few output pixels avoids oneDNN's slow kernel (:mod:`unnas.conv_grad`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from unnas.conv_grad import ShiftedGradConv2d, eligible

#: input channels below which a strided 1x1 convolution is computed by subsampling (the
#: largest channel block of oneDNN's x86 kernels, AVX-512's)
AT_RISK_CHANNELS = 16


class SubsampledPointwiseConv2d(nn.Conv2d):
    """A strided 1x1 ``nn.Conv2d`` (no padding) computed as ``x[..., ::s, ::s]`` and a
    unit-stride 1x1 convolution: identical output and gradients (each output pixel reads exactly
    the input pixel the stride lands on); parameters, buffers and ``stride`` unchanged."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        sh, sw = self.stride
        return F.conv2d(x[..., ::sh, ::sw], weight, bias, 1, 0, 1, self.groups)


def strided_pointwise_at_risk(m: nn.Module) -> bool:
    """Whether ``m`` is a strided 1x1 plain convolution with few input channels (the shape above)."""
    return (type(m) is nn.Conv2d and m.kernel_size == (1, 1) and m.stride != (1, 1) and m.groups == 1
            and m.padding in ((0, 0), "valid") and m.padding_mode == "zeros" and m.in_channels < AT_RISK_CHANNELS)


def to_channels_last(module: nn.Module) -> nn.Module:
    """NHWC weights for a 2D network (faster convolutions on CPU), its at-risk strided 1x1
    convolutions computed by subsampling; networks with 3D convolutions (5-D weights, which
    ``channels_last`` cannot hold) are left as they are; the other dense convolutions take their
    small-output bfloat16 weight gradients by shifted products. Returns ``module`` (changed in place)."""
    if any(p.dim() == 5 for p in module.parameters()):
        return module
    for m in module.modules():
        if strided_pointwise_at_risk(m):
            m.__class__ = SubsampledPointwiseConv2d
        elif eligible(m):
            m.__class__ = ShiftedGradConv2d
    return module.to(memory_format=torch.channels_last)
