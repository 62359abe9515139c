"""Shared pieces of the speed benchmarks: images, networks, the engine's training step, the
matmul peak and alternating timings.

    from _step import images_and_info, NETS, objective_for, TrainStep, matmul_peak, alternate, op_breakdown
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from unnas.memory_format import to_channels_last  # noqa: E402
from unnas.objectives.base import DataInfo, build_objective, objective_class  # noqa: E402
from unnas.precision import autocast  # noqa: E402
from unnas.spec import ArchSpec, build  # noqa: E402

# ResNet-18 layout with the CIFAR stem (3x3 conv, no max-pool; [2, 2, 2, 2] basic blocks, width 64)
# and a NAS-Bench-Macro network at width 1 (every layer an MBConv k3 t3: 1,576,064 parameters)
NETS = {"resnet18": ArchSpec("resnet", {"depths": [2, 2, 2, 2], "width": 64}, 0),
        "macro": ArchSpec("macro", {"arch": "11111111", "width": 1.0}, 0)}
OBJECTIVES = ("rotation", "jigsaw", "colorization", "moco", "supervised")


def images_and_info(n: int = 4096, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, DataInfo, str]:
    """uint8 ``(n, 3, 32, 32)`` CIFAR-10 training images (seeded random ones without the shared
    archive), their labels, the data info and the source's name."""
    try:
        from _cifar import cifar10_images

        x, y = cifar10_images("train")
        idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
        images, labels, source = torch.from_numpy(x)[idx], torch.from_numpy(y)[idx], "cifar10"
    except FileNotFoundError:
        g = torch.Generator().manual_seed(seed)
        images = torch.randint(0, 256, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
        labels, source = torch.randint(0, 10, (n,), generator=g), "random"
    xf = images[:2048].float() / 255
    info = DataInfo(3, 10, (32, 32), tuple(xf.mean(dim=(0, 2, 3)).tolist()), tuple(xf.std(dim=(0, 2, 3)).tolist()),
                    num_train=len(images))
    return images, labels, info, source


def objective_for(name: str, spec: ArchSpec, info: DataInfo, options=None, seed: int = 0):
    """The objective ``name`` on a fresh backbone built from ``spec`` (seeded), in training mode."""
    torch.manual_seed(seed)
    backbone = build(spec, objective_class(name).input_channels(info.channels))
    return build_objective(name, backbone, info, options).train()


class TrainStep:
    """One training step exactly as :func:`unnas.engine.train` runs it on a CPU: channels-last,
    the forward pass under :func:`unnas.precision.autocast`, SGD (Nesterov, weight decay),
    ``after_step``."""

    def __init__(self, objective, precision: str, channels_last: bool = True, lr: float = 0.05,
                 device: torch.device = torch.device("cpu")):
        self.objective, self.precision, self.device = objective, precision, device
        if channels_last:
            to_channels_last(objective)
        params = [p for p in objective.parameters() if p.requires_grad]
        self.opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
        self.gen = torch.Generator().manual_seed(0)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
        obj = self.objective
        with autocast(obj, self.device, self.precision):
            out = obj(images, labels if obj.uses_labels else None, self.gen)
        self.opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        self.opt.step()
        obj.after_step()
        return float(out["loss"].detach())


KINDS = {"matmul": ("conv", "mm", "linear", "matmul", "bmm", "einsum"),
         "batch_norm": ("batch_norm",),
         "copy_cast_layout": ("copy", "to_copy", "contiguous", "clone", "cat", "index", "empty", "stack",
                              "resize", "as_strided", "select", "slice", "view", "permute", "reshape", "fill",
                              "zero", "flip", "rot90", "pad"),
         "optimizer": ("_foreach", "sgd")}


def kind_of(op: str) -> str:
    name = op.removeprefix("aten::").lower()
    for kind, keys in KINDS.items():
        if any(k in name for k in keys):
            return kind
    return "elementwise_other"


def op_breakdown(fn: Callable[[], object]) -> dict[str, float]:
    """Share of the self CPU time of ``fn()`` per kind of aten op (:data:`KINDS`): what bounds a step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    totals: dict[str, float] = {}
    for ev in prof.key_averages():
        if ev.key.startswith("aten::"):
            totals[kind_of(ev.key)] = totals.get(kind_of(ev.key), 0.0) + ev.self_cpu_time_total
    s = sum(totals.values()) or 1.0
    return {k: round(v / s, 3) for k, v in sorted(totals.items(), key=lambda kv: -kv[1])}


def _conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                         _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """FLOPs of a convolution's backward: each requested gradient (input, weight) costs what the
    forward costs, ``2 x output (input when transposed) elements x prod(weight.shape[1:])``.
    torch's own formula ignores ``groups`` for the weight gradient (a depthwise 3x3 backward over
    96 channels counts 97x its real cost), so the step counts use this one."""
    elems = 1
    for d in (x_shape if transposed else grad_out_shape):
        elems *= d
    per = 1
    for d in w_shape[1:]:
        per *= d
    return 2 * elems * per * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the convolutions and matrix products ``fn()`` runs, forward and backward
    (``torch.utils.flop_counter`` with a grouped-convolution-correct backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping={torch.ops.aten.convolution_backward: _conv_backward_flops}) as c:
        fn()
    return int(c.get_total_flops())


# square products and the im2col shapes of 3x3 convolutions (rows x 9*channels x channels):
# oneDNN reaches its best on different shapes for float32 (large squares) and bfloat16 (the latter)
PEAK_SHAPES = ((2048, 2048, 2048), (4096, 4096, 4096), (16384, 1152, 128), (4096, 2304, 256))


def matmul_peak(dtype: torch.dtype, shapes=PEAK_SHAPES, repeats: int = 2,
                clock: Callable[[], float] = time.perf_counter) -> float:
    """The matmul peak: the best FLOP/s of ``(m, k) @ (k, n)`` products in ``dtype`` over
    ``shapes`` and ``repeats`` with the current thread count (``clock=time.process_time`` for CPU
    seconds of one thread)."""
    g = torch.Generator().manual_seed(0)
    best = 0.0
    for m, k, n in shapes:
        a = torch.randn(m, k, generator=g).to(dtype)
        b = torch.randn(k, n, generator=g).to(dtype)
        a @ b
        for _ in range(repeats):
            t0 = clock()
            a @ b
            best = max(best, 2 * m * k * n / (clock() - t0))
    return best


def alternate(fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1,
              cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Wall seconds of each call: ``warmup`` untimed calls each, then ``rounds`` rounds calling
    every function in turn (a change of machine load hits all alike). ``cpu``, when given, gets
    this process's CPU seconds of each call too (all its threads; on a machine shared with other
    work, closer to what an idle machine takes than the wall time)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            c0, t0 = time.process_time(), time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
            if cpu is not None:
                cpu.setdefault(k, []).append(time.process_time() - c0)
    return times
