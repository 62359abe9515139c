"""Complexity of a network without training: parameter count and FLOPs.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of a
single image: convolutions and matrix products, a multiply-add counted as two FLOPs (so a
``k x k`` conv producing ``Co x H x W`` outputs from ``Ci`` channels costs ``2 Ci k^2 Co H W``);
normalization, activations and pooling are not counted. ``macs`` is half of ``flops``.

A spec is measured on PyTorch's ``meta`` device: shapes only, no memory for weights and no
arithmetic, so even a 14-GFLOP candidate is measured in milliseconds (the counts equal those of a
real build; a network that cannot be built on ``meta`` is built normally).
"""

from __future__ import annotations

import itertools

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from unnas.spec import ArchSpec, build


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _device(model: nn.Module) -> torch.device:
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return first.device if first is not None else torch.device("cpu")


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on a zero input of ``input_shape`` (batch included), on the
    model's own device (``meta`` included)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(input_shape, device=_device(model)))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def build_meta(spec: ArchSpec, in_channels: int) -> nn.Module:
    """The spec's backbone on the ``meta`` device (or on the CPU if it cannot be built there)."""
    try:
        with torch.device("meta"):
            return build(spec, in_channels)
    except (NotImplementedError, RuntimeError):
        return build(spec, in_channels)


def complexity(spec: ArchSpec | nn.Module, in_channels: int = 3, image_size: int = 32) -> dict[str, int]:
    """``{"params", "flops", "macs"}`` of a spec's backbone (no classifier) or of a module."""
    model = build_meta(spec, in_channels) if isinstance(spec, ArchSpec) else spec
    shape = (1, in_channels, image_size, image_size)
    try:
        flops = count_flops(model, shape)
    except (NotImplementedError, RuntimeError):
        if model is spec or _device(model).type != "meta":
            raise
        model = build(spec, in_channels)  # an op without a meta kernel: measure a real build
        flops = count_flops(model, shape)
    return {"params": count_params(model), "flops": flops, "macs": flops // 2}
