"""Which convolutions are slower in bfloat16 than in float32 on this CPU; prints one JSON line.

    python benchmarks/bf16_layers.py [--batch 256] [--repeats 5]

Forward + backward (input and weight gradients) of one convolution, channels-last, float32
against bfloat16 (input and weight cast as autocast casts them), CPU seconds of one thread,
median of ``--repeats`` alternating calls, over a grid of depthwise, grouped and dense layers
(kernel 3 / 5, stride 1 / 2, dilation 1 / 2, inputs of 2 to 16 pixels). For each layer: the
ratio bfloat16 / float32 and whether :func:`unnas.precision.slow_in_bf16` keeps it in float32;
``rule_agrees`` counts the layers where the rule picks the faster precision (a ratio within 10 %
of 1 counts as either). The rule was read off one run of this grid (32 channels, batch 256).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _step import alternate  # noqa: E402

from unnas.precision import slow_in_bf16  # noqa: E402


def layer_seconds(conv: nn.Conv2d, x: torch.Tensor, repeats: int) -> dict[str, float]:
    def run(dtype):
        xi = x.to(dtype).requires_grad_(True)

        def fn():
            y = nn.functional.conv2d(xi, conv.weight.to(dtype), None, conv.stride, conv.padding, conv.dilation,
                                     conv.groups)
            y.backward(torch.ones_like(y))
        return fn

    cpu: dict[str, list[float]] = {}
    alternate({"float32": run(torch.float32), "bfloat16": run(torch.bfloat16)}, repeats, cpu=cpu)
    return {k: statistics.median(v) for k, v in cpu.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--channels", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    c = a.channels
    rows = []
    grid = itertools.product(("depthwise", "grouped8", "dense"), (3, 5), (1, 2), (1, 2), (2, 4, 8, 16))
    for kind, k, stride, dil, side in grid:
        if kind == "dense" and (dil == 2 or k == 5 and side > 8):
            continue  # dense layers: a few shapes suffice (never slower in bfloat16)
        groups = {"depthwise": c, "grouped8": 8, "dense": 1}[kind]
        conv = nn.Conv2d(c, c, k, stride, padding=dil * (k // 2), dilation=dil, groups=groups, bias=False)
        x = torch.randn(a.batch, c, side, side).to(memory_format=torch.channels_last)
        conv = conv.to(memory_format=torch.channels_last)
        t = layer_seconds(conv, x, a.repeats)
        ratio = t["bfloat16"] / t["float32"]
        kept = slow_in_bf16(conv, x)
        rows.append({"layer": f"{kind} k{k} s{stride} d{dil} {side}px", "float32_ms": round(1e3 * t["float32"], 2),
                     "bfloat16_ms": round(1e3 * t["bfloat16"], 2), "bf16_over_fp32": round(ratio, 2),
                     "kept_float32": kept, "agrees": bool(abs(ratio - 1) <= 0.1 or (ratio > 1) == kept)})
    print(json.dumps({"benchmark": "bf16_layers", "batch": a.batch, "channels": c, "repeats": a.repeats,
                      "torch": torch.__version__, "rule_agrees": f"{sum(r['agrees'] for r in rows)}/{len(rows)}",
                      "loadavg_1m": round(os.getloadavg()[0], 2), "layers": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
