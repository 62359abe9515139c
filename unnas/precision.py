"""Training precision: which autocast dtype a job uses, and the parts that stay float32.

``train.precision`` is ``auto`` (the default), ``float32``, ``bfloat16`` or ``float16``;
``train.amp=false`` means float32 whatever ``precision`` says. ``auto`` resolves per device:

* CUDA: ``float16`` autocast with a gradient scaler (as before);
* CPU: ``bfloat16`` autocast when the CPU computes bfloat16 natively (AVX512-BF16 or AMX
  tiles: :func:`cpu_bf16_fast`), else ``float32`` (emulated bfloat16 is slower than float32).

Under autocast the convolutions and matrix products run in the low precision; the weights, the
optimizer's state, BatchNorm's running statistics and the cross-entropy (with its reduction)
stay float32 (autocast's own policy; :func:`full_precision` for the rest). The ranking runner
resolves ``auto`` once, on the driver, and stores the concrete value in the run's configuration:
it is part of every job's configuration hash, printed in the run header, and every executor
trains with the same precision.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from unnas.errors import UserError

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def cpu_bf16_fast() -> bool:
    """True when this CPU has bfloat16 arithmetic in hardware (AVX512-BF16 or AMX) and torch's
    oneDNN backend can use it."""
    cpu = getattr(torch, "cpu", None)
    native = any(bool(getattr(cpu, f, lambda: False)()) for f in ("_is_avx512_bf16_supported",
                                                                   "_is_amx_tile_supported"))
    return native and torch.backends.mkldnn.is_available()


def resolve_precision(cfg, device: str | torch.device = "cpu") -> str:
    """The concrete precision (``float32`` / ``bfloat16`` / ``float16``) of a training run with
    ``cfg`` (a :class:`~unnas.config.TrainConfig`) on ``device``."""
    name = getattr(cfg, "precision", "auto")
    if name not in PRECISIONS:
        raise UserError("train.precision", name, PRECISIONS)
    dev = torch.device(device) if not isinstance(device, torch.device) else device
    if not cfg.amp:
        return "float32"
    if name == "float16" and dev.type == "cpu":
        raise UserError("train.precision", name, "auto, float32, bfloat16 on a CPU",
                        message="float16 autocast is for CUDA")
    if name != "auto":
        return name
    if dev.type == "cuda":
        return "float16"
    return "bfloat16" if dev.type == "cpu" and cpu_bf16_fast() else "float32"


def slow_in_bf16(module: nn.Module, x: torch.Tensor | None = None) -> bool:
    """Layers oneDNN computes slower in bfloat16 than in float32 on a CPU, measured per shape
    (``benchmarks/bf16_layers.py``; dense convolutions and matrix products are never slower):

    * depthwise convolutions, except 3x3 ones with stride 1 and no dilation on inputs larger
      than 4 pixels a side: a depthwise 3x3 with stride 2 is 7-14x slower in bfloat16, a 5x5
      1.8-3x;
    * other grouped convolutions with a stride, or on inputs of at most 4 pixels a side.

    * every 3D convolution (video backbones): not measured faster in bfloat16, and a tiny S3D
      trained one step in bfloat16 gave non-finite held-out features where float32 did not.

    ``x`` is the layer's input (None: the part of the rule that does not depend on its shape)."""
    if isinstance(module, nn.Conv3d):
        return True
    if not isinstance(module, nn.Conv2d) or module.groups == 1:
        return False
    small = x is not None and min(x.shape[-2:]) <= 4
    if module.groups == module.in_channels:
        return module.kernel_size != (3, 3) or max(module.stride) > 1 or max(module.dilation) > 1 or small
    return max(module.stride) > 1 or small


def _grouped(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv3d) or (isinstance(module, nn.Conv2d) and module.groups > 1)


def _float32_where_slow(module: nn.Module):
    plain = type(module).forward

    def forward(x: torch.Tensor) -> torch.Tensor:
        if not slow_in_bf16(module, x):
            return plain(module, x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return plain(module, x.float())

    return forward


def with_precision(cfg):
    """``cfg`` (a :class:`~unnas.config.Config`) with ``train.precision`` resolved for its
    ``run.device`` (``auto`` -> the concrete dtype; ``amp=false`` -> ``float32``)."""
    from unnas import config
    from unnas.engine import resolve_device

    return config.replace(cfg, train={"precision": resolve_precision(cfg.train, resolve_device(cfg.run.device))})


@contextlib.contextmanager
def autocast(model: nn.Module | None, device: torch.device, precision: str) -> Iterator[None]:
    """The context of one training forward pass of ``model`` in ``precision``: autocast (nothing
    for ``float32``) and, in bfloat16 on a CPU, the calls :func:`slow_in_bf16` picks in float32
    (the grouped convolutions' ``forward`` is replaced for the duration of the block and decides
    per input shape; backward follows what forward ran)."""
    if precision == "float32":
        yield
        return
    slow = [m for m in model.modules() if _grouped(m)] if (
        model is not None and device.type == "cpu" and precision == "bfloat16") else []
    try:
        for m in slow:
            m.forward = _float32_where_slow(m)
        with torch.autocast(device_type=device.type, dtype=DTYPES[precision]):
            yield
    finally:
        for m in slow:
            m.__dict__.pop("forward", None)


@contextlib.contextmanager
def full_precision(x: torch.Tensor) -> Iterator[None]:
    """Disable autocast on ``x``'s device inside the block: what must be exact (colour-space
    maths, contrastive logits) computes in float32 even inside a bfloat16 training step."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield
