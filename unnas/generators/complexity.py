"""Complexity of a network without training: parameter count and FLOPs.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of a
single image: convolutions and matrix products, a multiply-add counted as two FLOPs (so a
``k x k`` conv producing ``Co x H x W`` outputs from ``Ci`` channels costs ``2 Ci k^2 Co H W``);
normalization, activations and pooling are not counted. ``macs`` is half of ``flops``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from unnas.spec import ArchSpec, build


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass on a zero input of ``input_shape`` (batch included)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(input_shape))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def complexity(spec: ArchSpec | nn.Module, in_channels: int = 3, image_size: int = 32) -> dict[str, int]:
    """``{"params", "flops", "macs"}`` of a spec's backbone (no classifier) or of a module."""
    model = build(spec, in_channels) if isinstance(spec, ArchSpec) else spec
    flops = count_flops(model, (1, in_channels, image_size, image_size))
    return {"params": count_params(model), "flops": flops, "macs": flops // 2}
