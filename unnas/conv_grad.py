"""Weight gradients of small-output convolutions as shifted matrix products (bfloat16 on a CPU).

oneDNN's bfloat16 weight-gradient kernel (``brgconv_bwd_w``, AMX) is slow when a layer's output
has few pixels and many channels, the last stages of every CIFAR-size network: measured with
torch 2.14.1 on an AMX CPU, one thread, batch 128, a 3x3 512 -> 512 layer on 4 x 4 pixels takes
3.5x to 4x its own forward pass for the weight gradient alone (``benchmarks/conv_weight_grad.py``).
The same gradient is a sum of ``kh * kw`` matrix products, one per kernel offset::

    dW[:, :, i, j] = G^T @ X_ij      G: (N*Ho*Wo, O) output gradient, X_ij: (N*Ho*Wo, C) the
                                     (padded) input shifted by (i, j) and subsampled by the stride

which, on channels-last tensors, are plain GEMMs on AMX tiles: 4x to 5x faster at those shapes.
:class:`ShiftedGradConv2d` computes exactly that for the calls :func:`uses_shifted_grad` picks
(bfloat16, dense; at most :data:`MAX_OUTPUT_PIXELS` output pixels with at least :data:`MIN_IN_CHANNELS`
channels in and :data:`MIN_OUT_CHANNELS` out, or a 1x1 kernel on at most :data:`MAX_POINTWISE_PIXELS`
output pixels: where the benchmark measured it faster); every other call, the forward pass
and the input gradient stay oneDNN's. Both accumulate in float32 and round the result to bfloat16 once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

#: the largest output (pixels per image) and the fewest input and output channels for which the
#: shifted products are used (bfloat16): measured faster than oneDNN there (up to 12x on 2 x 2
#: outputs), 0.9x to 1x at the edges, and slower (down to 0.2x) on larger outputs or fewer channels
MAX_OUTPUT_PIXELS = 64
MIN_IN_CHANNELS = 64
MIN_OUT_CHANNELS = 128
#: 1x1 kernels: the largest output for which the shifted product (one GEMM) is used at any width
#: (measured 1.1x to 8x faster on 2 x 2 and 4 x 4 outputs from 16 to 512 channels)
MAX_POINTWISE_PIXELS = 16


def shifted_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel: tuple[int, int],
                        stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    """The weight gradient of ``conv2d(x, w, stride, padding)`` (dilation 1, one group) given the
    output gradient, as ``kh * kw`` matrix products; ``(O, C, kh, kw)`` in channels-last strides."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c = x.shape[:2]
    o, ho, wo = grad_out.shape[1:]
    xh = (F.pad(x, (pw, pw, ph, ph)) if ph or pw else x).permute(0, 2, 3, 1)  # NHWC
    g = grad_out.permute(0, 2, 3, 1).reshape(n * ho * wo, o).t()
    out = x.new_empty((o, kh, kw, c))
    for i in range(kh):
        for j in range(kw):
            xs = xh[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :].reshape(n * ho * wo, c)
            out[:, i, j, :] = g @ xs
    return out.permute(0, 3, 1, 2)


class _ShiftedGradConv(torch.autograd.Function):
    """``conv2d`` whose weight gradient is :func:`shifted_weight_grad`; the input gradient is
    oneDNN's (``aten.convolution_backward``), the bias gradient the output gradient's sum."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = torch.ops.aten.convolution_backward(grad_out, x, weight, None, ctx.stride, ctx.padding, (1, 1),
                                                     False, (0, 0), 1, (True, False, False))[0]
        if ctx.needs_input_grad[1]:
            gw = shifted_weight_grad(x, grad_out, tuple(weight.shape[2:]), ctx.stride, ctx.padding)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = grad_out.float().sum(dim=(0, 2, 3)).to(grad_out.dtype)
        return gx, gw, gb, None, None


def eligible(m: nn.Module) -> bool:
    """A plain dense 2D convolution the shifted products can compute (one group, dilation 1, zero
    padding given as numbers)."""
    return (type(m) is nn.Conv2d and m.groups == 1 and m.dilation == (1, 1) and m.padding_mode == "zeros"
            and not isinstance(m.padding, str))


def compute_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype a convolution of ``x`` runs in: autocast's on ``x``'s device when it is on and would
    cast the inputs (autocast leaves float64 tensors alone), else the inputs'."""
    if torch.is_autocast_enabled(x.device.type) and torch.float64 not in (x.dtype, weight.dtype):
        return torch.get_autocast_dtype(x.device.type)
    return torch.promote_types(x.dtype, weight.dtype)


def output_pixels(m: nn.Conv2d, x: torch.Tensor) -> int:
    h, w = x.shape[-2:]
    (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
    return ((h + 2 * ph - kh) // sh + 1) * ((w + 2 * pw - kw) // sw + 1)


def uses_shifted_grad(m: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether this call of ``m`` computes its weight gradient by shifted products: a CPU call
    that will take a weight gradient, in bfloat16, with at most :data:`MAX_OUTPUT_PIXELS` output
    pixels, at least :data:`MIN_IN_CHANNELS` channels in and :data:`MIN_OUT_CHANNELS` out, or with a
    1x1 kernel and at most :data:`MAX_POINTWISE_PIXELS` output pixels."""
    if not (x.device.type == "cpu" and x.dim() == 4 and torch.is_grad_enabled() and m.weight.requires_grad
            and compute_dtype(x, m.weight) == torch.bfloat16):
        return False
    pixels = output_pixels(m, x)
    if m.kernel_size == (1, 1) and pixels <= MAX_POINTWISE_PIXELS:
        return True
    return m.in_channels >= MIN_IN_CHANNELS and m.out_channels >= MIN_OUT_CHANNELS and pixels <= MAX_OUTPUT_PIXELS


class ShiftedGradConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose weight gradient, where :func:`uses_shifted_grad` picks it, is computed
    by :func:`shifted_weight_grad`; same parameters, state-dict keys, forward values and input gradient."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if not uses_shifted_grad(self, x):
            return super()._conv_forward(x, weight, bias)
        dt = torch.bfloat16  # what uses_shifted_grad checked the call runs in
        args = (x.to(dt), weight.to(dt), None if bias is None else bias.to(dt))
        with torch.autocast(device_type=x.device.type, enabled=False):
            return _ShiftedGradConv.apply(*args, self.stride, self.padding)
