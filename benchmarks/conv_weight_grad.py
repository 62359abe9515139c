"""bfloat16 weight gradients: oneDNN's kernel against shifted matrix products; prints one JSON line.

    python benchmarks/conv_weight_grad.py [--batch 128] [--repeats 3] [--dtype bfloat16]

For each layer of a grid of dense convolutions (channels 32 to 512, kernel 1 / 3, stride 1 / 2,
2 to 16 output pixels a side, channels-last, batch ``--batch``): CPU seconds of one thread of the
weight gradient alone, oneDNN's (``aten.convolution_backward`` with only the weight gradient asked
for, what autograd calls) against :func:`unnas.conv_grad.shifted_weight_grad`, medians of
``--repeats`` alternating calls; the error of each against a float64 reference (max abs error /
max abs value); whether :func:`unnas.conv_grad.uses_shifted_grad` picks the shifted products there.
``rule_agrees`` counts the layers where the rule picks the faster way (a ratio within 10 % of 1
counts as either). The thresholds of the rule were read off one run of this grid (batch 128).
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _step import alternate  # noqa: E402

from unnas.conv_grad import ShiftedGradConv2d, shifted_weight_grad, uses_shifted_grad  # noqa: E402


def onednn_weight_grad(x, g, w, stride, padding):
    return torch.ops.aten.convolution_backward(g, x, w, None, stride, padding, (1, 1), False, (0, 0), 1,
                                               (False, True, False))[1]


def layer(cin: int, cout: int, k: int, stride: int, side: int, batch: int, dtype: torch.dtype, repeats: int) -> dict:
    pad = k // 2
    gen = torch.Generator().manual_seed(0)
    h = side * stride
    x = torch.randn(batch, cin, h, h, generator=gen).contiguous(memory_format=torch.channels_last)
    w = torch.randn(cout, cin, k, k, generator=gen).contiguous(memory_format=torch.channels_last)
    g = torch.randn(batch, cout, side, side, generator=gen).contiguous(memory_format=torch.channels_last)
    xd, wd, gd = x.to(dtype), w.to(dtype), g.to(dtype)
    st, pd = (stride, stride), (pad, pad)
    ways = {"onednn": lambda: onednn_weight_grad(xd, gd, wd, st, pd),
            "shifted": lambda: shifted_weight_grad(xd, gd, (k, k), st, pd)}
    ref = onednn_weight_grad(xd.double(), gd.double(), wd.double(), st, pd)
    err = {n: float((f().double() - ref).abs().max() / ref.abs().max()) for n, f in ways.items()}
    cpu: dict[str, list[float]] = {}
    alternate(ways, repeats, cpu=cpu)
    sec = {n: statistics.median(v) for n, v in cpu.items()}
    conv = ShiftedGradConv2d(cin, cout, k, stride, pad, bias=False)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        picked = uses_shifted_grad(conv, x)
    ratio = sec["onednn"] / sec["shifted"]
    return {"cin": cin, "cout": cout, "kernel": k, "stride": stride, "out_side": side,
            "onednn_ms": round(1e3 * sec["onednn"], 2), "shifted_ms": round(1e3 * sec["shifted"], 2),
            "speedup": round(ratio, 3), "rule_shifted": picked,
            "rule_agrees": picked == (ratio > 1) or abs(ratio - 1) <= 0.1,
            "rel_err": {n: float(f"{v:.2e}") for n, v in err.items()}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    p.add_argument("--channels", default="32,64,128,256,512")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    dtype = getattr(torch, a.dtype)
    rows = []
    chans = [int(c) for c in a.channels.split(",")]
    for c, k, stride, side in itertools.product(chans, (1, 3), (1, 2), (2, 4, 8, 16)):
        if c * side > 4096:  # 512 channels on 16 x 16 outputs: not a CIFAR network's shape
            continue
        cin = c if stride == 1 else c // 2  # a stage's first layer doubles the channels
        rows.append(layer(cin, c, k, stride, side, a.batch, dtype, a.repeats))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    picked = [r for r in rows if r["rule_shifted"]]
    print(json.dumps({"benchmark": "conv_weight_grad", "dtype": a.dtype, "batch": a.batch, "threads": 1,
                      "torch": torch.__version__, "layers": len(rows),
                      "rule_agrees": sum(r["rule_agrees"] for r in rows),
                      "picked": len(picked),
                      "picked_speedup_median": round(statistics.median(r["speedup"] for r in picked), 3) if picked
                      else None,
                      # the grid's total weight-gradient time: oneDNN everywhere, the rule's picks, the faster each time
                      "total_ms": {"onednn": round(sum(r["onednn_ms"] for r in rows), 1),
                                   "rule": round(sum(r["shifted_ms" if r["rule_shifted"] else "onednn_ms"] for r in rows), 1),
                                   "best": round(sum(min(r["onednn_ms"], r["shifted_ms"]) for r in rows), 1)},
                      "faster_not_picked": [r for r in rows if not r["rule_shifted"] and r["speedup"] > 1.1],
                      "slower_picked": [r for r in picked if r["speedup"] < 0.9],
                      "layers_detail": rows, "loadavg_1m": round(os.getloadavg()[0], 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
