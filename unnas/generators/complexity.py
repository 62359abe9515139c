"""Complexity of a network without training: parameter count and FLOPs.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of a
single image: convolutions and matrix products, a multiply-add counted as two FLOPs (so a
``k x k`` conv producing ``Co x H x W`` outputs from ``Ci`` channels costs ``2 Ci k^2 Co H W``);
normalization, activations and pooling are not counted. ``macs`` is half of ``flops``. A video
network is measured on one clip ``(1, T, C, H, W)``; a ``kt x k x k`` 3D conv costs
``2 Ci kt k^2 Co T' H' W'``.

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


def input_shape(spec: ArchSpec | nn.Module, in_channels: int, image_size: int, frames: int = 0) -> tuple[int, ...]:
    """One input sample with its batch dimension: ``(1, C, S, S)`` for an image network, ``(1, T, C, S, S)``
    for a video network (``T = frames``, else its generator's ``default_frames``)."""
    if isinstance(spec, ArchSpec):
        from unnas.spec import get_generator

        gen = get_generator(spec.generator)
        if getattr(gen, "data_kind", "image") == "video":
            frames = frames or int(gen.default_frames)
    return (1, *((frames,) if frames else ()), in_channels, image_size, image_size)


def complexity(spec: ArchSpec | nn.Module, in_channels: int = 3, image_size: int = 32,
               frames: int = 0) -> dict[str, int]:
    """``{"params", "flops", "macs"}`` of a spec's backbone (no classifier) or of a module, for one
    ``in_channels x image_size x image_size`` image, or one clip of ``frames`` such frames for a
    video network (:func:`input_shape`)."""
    shape = input_shape(spec, in_channels, image_size, frames)
    model = build_meta(spec, in_channels) if isinstance(spec, ArchSpec) else spec
    try:
        flops = count_flops(model, shape)
    except (NotImplementedError, RuntimeError):
        if model is spec or _device(model).type != "meta":
            raise
        model = build(spec, in_channels)  # an op without a meta kernel: measure a real build
        flops = count_flops(model, shape)
    return {"params": count_params(model), "flops": flops, "macs": flops // 2}
