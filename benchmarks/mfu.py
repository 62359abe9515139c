"""Utilization of a full training step: images/s, achieved FLOP/s and MFU, float32 and bfloat16.

For every objective (rotation, jigsaw, colorization, moco, supervised) on a ResNet-18 layout
with the CIFAR stem and on a NAS-Bench-Macro network at width 1 (``_step.NETS``), on 32x32
CIFAR-10 images: one training step exactly as the engine runs it on a CPU (``_step.TrainStep``:
channels-last, autocast of :mod:`unnas.precision`, SGD), per precision.

* FLOPs of a step: counted by ``torch.utils.flop_counter.FlopCounterMode`` over one whole step
  (forward and backward: every convolution and matrix product the step runs, MoCo's key
  encoder and logits included; grouped convolutions' backward with ``_step.count_flops``'s
  formula, since torch's ignores the groups);
* peak: the best FLOP/s of matrix products in the same dtype with the same threads (squares of
  2048 and 4096, and the im2col shapes of 3x3 convolutions, ``_step.PEAK_SHAPES``), measured in
  every round next to the steps;
* MFU = FLOPs / step time / peak of the same round, median over ``--rounds`` rounds that
  alternate the precisions (and the peaks), after one warm-up step each.

``--profile`` adds, per precision, the share of the step's CPU time in each kind of op
(convolutions and matrix products, BatchNorm, other elementwise ops, copies / casts / layout
changes, the optimizer) and the MFU within the convolutions' own time (MFU / their share):
what bounds the MFU. Prints one JSON line.

    python benchmarks/mfu.py [--nets resnet18,macro] [--objectives rotation,...] [--batch 256]
                             [--rounds 3] [--threads 0] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _step import (  # noqa: E402
    NETS,
    OBJECTIVES,
    PEAK_SHAPES,
    TrainStep,
    alternate,
    count_flops,
    images_and_info,
    matmul_peak,
    objective_for,
    op_breakdown,
)

from unnas.precision import DTYPES  # noqa: E402


def bench(net: str, name: str, images, labels, info, args) -> dict:
    steps = {p: TrainStep(objective_for(name, NETS[net], info), p) for p in args.precisions}
    gen = torch.Generator().manual_seed(1)
    batches = []

    def batch():
        idx = torch.randperm(len(images), generator=gen)[: args.batch]
        return images[idx], labels[idx]

    batches = [batch() for _ in range(args.rounds + 1)]
    it = {p: iter(batches) for p in args.precisions}
    peaks: dict[str, list[float]] = {p: [] for p in args.precisions}

    def run(p):
        return lambda: steps[p](*next(it[p]))

    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    shapes = ((args.matmul_n,) * 3,) if args.matmul_n else PEAK_SHAPES

    def peak(p):
        return lambda: peaks[p].append(matmul_peak(DTYPES[p], shapes, clock=clock))

    fns = {}
    for p in args.precisions:
        fns[p] = run(p)
        fns[f"peak_{p}"] = peak(p)
    cpu: dict[str, list[float]] = {}
    times = alternate(fns, args.rounds, warmup=1, cpu=cpu)
    if args.clock == "cpu":
        times = cpu
    out = {"net": net, "objective": name, "batch": args.batch}
    for p in args.precisions:
        flops = count_flops(lambda: steps[p](*batches[-1]))
        t = times[p]
        pk = peaks[p][1:]  # the warm-up round's peak is not paired with a timed step
        mfu = [flops / ti / pi for ti, pi in zip(t, pk)]
        out[p] = {"images_per_s": round(args.batch / statistics.median(t), 2),
                  "images_per_cpu_s": round(args.batch / statistics.median(cpu[p]), 2),
                  "step_s": round(statistics.median(t), 3), "step_s_rounds": [round(v, 3) for v in t],
                  "gflop_per_step": round(flops / 1e9, 2),
                  "achieved_gflop_s": round(flops / statistics.median(t) / 1e9, 1),
                  "peak_gflop_s": round(statistics.median(pk) / 1e9, 1), "mfu": round(statistics.median(mfu), 3)}
        if args.profile:
            share = op_breakdown(lambda: steps[p](*batches[0]))
            out[p]["time_share"] = share
            if share.get("matmul"):  # how fast the convolutions and products themselves run
                out[p]["mfu_within_matmul_time"] = round(out[p]["mfu"] / share["matmul"], 3)
    ps = args.precisions
    if "float32" in ps and "bfloat16" in ps:
        ratio = [a / b for a, b in zip(times["float32"], times["bfloat16"])]
        out["bf16_speedup"] = round(statistics.median(ratio), 3)
        out["bf16_speedup_cpu_time"] = round(statistics.median(
            [a / b for a, b in zip(cpu["float32"], cpu["bfloat16"])]), 3)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default=",".join(NETS))
    p.add_argument("--objectives", default=",".join(OBJECTIVES))
    p.add_argument("--precisions", default="float32,bfloat16")
    p.add_argument("--batch", type=int, default=256, help="source images per step")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    p.add_argument("--matmul-n", type=int, default=0, help="peak of N x N products only (0 = _step.PEAK_SHAPES)")
    p.add_argument("--profile", action="store_true", help="add the share of step time per kind of op")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: steps and peaks in CPU seconds (one thread only; on a machine shared with other "
                        "work, closer to an idle machine's times)")
    args = p.parse_args(argv)
    args.precisions = [s.strip() for s in args.precisions.split(",") if s.strip()]
    bad = [s for s in args.precisions if s not in ("float32", "bfloat16")]
    if bad:
        p.error(f"--precisions: {bad[0]!r}; allowed: float32, bfloat16")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu" and torch.get_num_threads() != 1:
        p.error("--clock cpu needs --threads 1 (CPU seconds of several threads are not a duration)")
    images, labels, info, source = images_and_info(max(4096, 2 * args.batch))
    results = [bench(net.strip(), name.strip(), images, labels, info, args)
               for net in args.nets.split(",") for name in args.objectives.split(",")]
    print(json.dumps({"benchmark": "mfu", "images": source, "image_size": 32, "threads": torch.get_num_threads(),
                      "clock": args.clock,
                      "rounds": args.rounds, "matmul_n": args.matmul_n, "torch": torch.__version__,
                      "cpu": platform.processor() or platform.machine(),
                      "loadavg_1m": round(os.getloadavg()[0], 2), "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
