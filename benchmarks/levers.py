"""Speed levers measured across a population (not on one network); prints one JSON line.

    python benchmarks/levers.py --lever precision [--population digits|cifar] [--num-archs 4] [--profile]
    python benchmarks/levers.py --lever hugepages
    python benchmarks/levers.py --lever compile   [--job-steps 80]
    python benchmarks/levers.py --lever batch     [--batches 64,128,256]
    python benchmarks/levers.py --lever shifted-grad --population macro --objective moco --batch 128

Every candidate of the population (``randwire-ws``: the default population on ``digits`` at
16 px, or the same generator on 32 px CIFAR-10 images; ``macro``: NAS-Bench-Macro networks drawn
uniformly, at width 1, on 32 px CIFAR-10 images) trains ``--steps`` steps of ``--objective``
exactly as the engine does (``_step.TrainStep``), in ``--precision``:

* ``precision``: float32 against bfloat16 autocast (alternating, median step time per candidate);
  ``--profile`` adds each precision's share of step time per kind of op over the population.
* ``hugepages``: torch's CPU allocator with and without transparent huge pages for large
  tensors (``THP_MEM_ALLOC_ENABLE``, read once per process, so each side runs in its own
  process); sides alternate for ``--repeats`` rounds, median step time per candidate.
* ``compile``: ``torch.compile`` of the backbone (inductor, a fresh cache per candidate, so the
  compile time is real) against eager; a job's cost is ``compile time + job_steps x step``
  (``--job-steps``: the default job, 4 epochs of 20 steps on digits).
* ``batch``: images per second at each batch size (alternating, median).
* ``shifted-grad``: bfloat16 weight gradients by shifted matrix products where
  :func:`unnas.conv_grad.uses_shifted_grad` picks them (what the engine does) against oneDNN's
  kernel for every layer (alternating, median step time per candidate).

Times are CPU seconds of the one-threaded training process (``--threads 1``; the compile time
includes the C++ compiler processes inductor starts, compiling in one thread), which a machine
shared with other work inflates far less than wall time.

The verdict per lever: the population-total ratio and how many candidates gain.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _step import TrainStep, alternate, count_flops, matmul_peak, objective_for, op_breakdown  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def population(name: str, n: int):
    """``(specs, images, labels, info)`` of a population."""
    from unnas.data import load_dataset
    from unnas.objectives.base import DataInfo
    from unnas.population import sample_population

    if name == "digits":
        from unnas.config import DataConfig

        data = load_dataset(DataConfig())
        images, labels, info = data.train.images, data.train.labels, DataInfo.of(data)
    else:
        from _step import images_and_info

        images, labels, info, _ = images_and_info(4096)
    gen, base = ("macro", {"width": 1.0}) if name == "macro" else ("randwire-ws", {})
    specs = sample_population(gen, n, 0, base, in_channels=info.channels, image_size=info.image_size[0])
    return specs, images, labels, info


def _batches(images, labels, batch: int, n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        idx = torch.randperm(len(images), generator=g)[:batch]
        out.append((images[idx], labels[idx]))
    return out


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the C++ compiler of inductor)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + r.ru_utime + r.ru_stime


def _steps_seconds(step: TrainStep, batches) -> list[float]:
    """CPU seconds of each step (one thread: what an idle machine takes, even on a shared one)."""
    ts = []
    for b in batches:
        t0 = time.process_time()
        step(*b)
        ts.append(time.process_time() - t0)
    return ts


def _precision(a) -> str:
    from unnas.config import TrainConfig
    from unnas.precision import resolve_precision

    return resolve_precision(TrainConfig(precision=a.precision), "cpu")


def worker(a) -> dict:
    """One side of a cross-process comparison: seconds per step of every candidate."""
    prec = _precision(a)
    specs, images, labels, info = population(a.population, a.num_archs)
    out = {}
    for spec in specs:
        step = TrainStep(objective_for(a.objective, spec, info), prec)
        if a.compile:
            bb = step.objective.backbone
            bb.forward_features = torch.compile(bb.forward_features)
        bs = _batches(images, labels, a.batch, a.steps + 1)
        t0 = _cpu()
        step(*bs[0])  # with --compile: the compilation, the C++ compiler's processes included
        first = _cpu() - t0
        ts = _steps_seconds(step, bs[1:])
        out[spec.arch_id] = {"first_s": first, "step_s": statistics.median(ts)}
    return {"precision": prec, "per_arch": out}


def _run_worker(a, env: dict, compile_: bool = False) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--population", a.population,
           "--num-archs", str(a.num_archs), "--objective", a.objective, "--steps", str(a.steps),
           "--batch", str(a.batch), "--precision", a.precision, "--threads", str(a.threads)]
    if compile_:
        cmd.append("--compile")
    full = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **env}
    res = subprocess.run(cmd, env=full, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _verdict(base: dict[str, float], new: dict[str, float]) -> dict:
    gains = sum(new[k] < base[k] for k in base)
    return {"population_ratio": round(sum(base.values()) / sum(new.values()), 3),
            "per_arch_ratio": {k: round(base[k] / new[k], 3) for k in base},
            "archs_faster": f"{gains}/{len(base)}"}


def lever_hugepages(a) -> dict:
    sides = {"off": {"THP_MEM_ALLOC_ENABLE": "0"}, "on": {"THP_MEM_ALLOC_ENABLE": "1"}}
    runs: dict[str, list[dict]] = {k: [] for k in sides}
    for _ in range(a.repeats):
        for k, env in sides.items():
            runs[k].append(_run_worker(a, env)["per_arch"])
    med = {k: {arch: statistics.median(r[arch]["step_s"] for r in v) for arch in v[0]} for k, v in runs.items()}
    return {"step_s": {k: {x: round(t, 4) for x, t in m.items()} for k, m in med.items()},
            **_verdict(med["off"], med["on"])}


def lever_compile(a) -> dict:
    out = {}
    for r in range(a.repeats):
        for mode in ("eager", "compile"):
            env = {"TORCHINDUCTOR_CACHE_DIR": tempfile.mkdtemp(prefix="unnas-inductor-"),
                   "TORCHINDUCTOR_COMPILE_THREADS": "1"}  # compile in this process: its CPU time is counted
            out.setdefault(mode, []).append(_run_worker(a, env, compile_=mode == "compile")["per_arch"])
    med = {m: {x: {k: statistics.median(r[x][k] for r in v) for k in ("first_s", "step_s")} for x in v[0]}
           for m, v in out.items()}
    eager = {x: a.job_steps * v["step_s"] for x, v in med["eager"].items()}
    comp = {x: max(0.0, v["first_s"] - med["eager"][x]["step_s"]) + a.job_steps * v["step_s"]
            for x, v in med["compile"].items()}
    return {"job_steps": a.job_steps,
            "compile_s": {x: round(v["first_s"], 1) for x, v in med["compile"].items()},
            "step_ratio": {x: round(med["eager"][x]["step_s"] / med["compile"][x]["step_s"], 3) for x in eager},
            "job_s": {"eager": {x: round(v, 1) for x, v in eager.items()},
                      "compile": {x: round(v, 1) for x, v in comp.items()}},
            **_verdict(eager, comp)}


def lever_precision(a) -> dict:
    """Per candidate: CPU seconds of a step in each precision and its counted FLOPs; the matmul
    peak of each dtype (``_step.matmul_peak``, CPU seconds) before and after; population images/s
    and MFU (total FLOPs over total time over the peak)."""
    from unnas.precision import DTYPES

    specs, images, labels, info = population(a.population, a.num_archs)
    sides = ("float32", "bfloat16")
    peaks = {p: [matmul_peak(DTYPES[p], clock=time.process_time)] for p in sides}
    per: dict[str, dict[str, float]] = {p: {} for p in sides}
    shares: dict[str, dict[str, float]] = {p: {} for p in sides}
    flops: dict[str, int] = {}
    for spec in specs:
        steps = {p: TrainStep(objective_for(a.objective, spec, info), p) for p in sides}
        bs = {p: iter(_batches(images, labels, a.batch, a.repeats + 2 + a.profile)) for p in sides}
        cpu: dict = {}
        alternate({p: (lambda p=p: steps[p](*next(bs[p]))) for p in sides}, a.repeats, cpu=cpu)
        for p in sides:
            per[p][spec.arch_id] = statistics.median(cpu[p])
        flops[spec.arch_id] = count_flops(lambda: steps["float32"](*next(bs["float32"])))
        if a.profile:
            for p in sides:
                share = op_breakdown(lambda p=p: steps[p](*next(bs[p])))
                for kind, v in share.items():  # weighted by the candidate's step time: population shares
                    shares[p][kind] = shares[p].get(kind, 0.0) + v * per[p][spec.arch_id]
    for p in sides:
        peaks[p].append(matmul_peak(DTYPES[p], clock=time.process_time))
    total = sum(flops.values())
    summary = {p: {"images_per_cpu_s": round(a.batch * len(specs) / sum(per[p].values()), 1),
                   "gflop_per_cpu_s": round(total / sum(per[p].values()) / 1e9, 2),
                   "matmul_peak_gflop_s": round(max(peaks[p]) / 1e9, 1),
                   "mfu": round(total / sum(per[p].values()) / max(peaks[p]), 4)} for p in sides}
    if a.profile:
        for p in sides:
            summary[p]["time_share"] = {k: round(v / sum(per[p].values()), 3)
                                        for k, v in sorted(shares[p].items(), key=lambda kv: -kv[1])}
    return {"step_cpu_s": {p: {x: round(v, 4) for x, v in d.items()} for p, d in per.items()},
            "gflop_per_step": {x: round(v / 1e9, 3) for x, v in flops.items()}, "totals": summary,
            **_verdict(per["float32"], per["bfloat16"])}


def lever_shifted_grad(a) -> dict:
    """Per candidate: CPU seconds of a step with the engine's layers (shifted-product weight
    gradients where the rule picks them) and with every convolution left to oneDNN."""
    from torch import nn

    from unnas.conv_grad import ShiftedGradConv2d

    prec = _precision(a)
    specs, images, labels, info = population(a.population, a.num_archs)
    sides = ("onednn", "shifted")
    per: dict[str, dict[str, float]] = {s: {} for s in sides}
    for spec in specs:
        steps = {s: TrainStep(objective_for(a.objective, spec, info), prec) for s in sides}
        for m in steps["onednn"].objective.modules():
            if type(m) is ShiftedGradConv2d:
                m.__class__ = nn.Conv2d
        bs = {s: iter(_batches(images, labels, a.batch, a.repeats + 1)) for s in sides}
        cpu: dict = {}
        alternate({s: (lambda s=s: steps[s](*next(bs[s]))) for s in sides}, a.repeats, cpu=cpu)
        for s in sides:
            per[s][spec.arch_id] = statistics.median(cpu[s])
    return {"precision": prec, "step_cpu_s": {s: {x: round(v, 4) for x, v in d.items()} for s, d in per.items()},
            **_verdict(per["onednn"], per["shifted"])}


def lever_batch(a) -> dict:
    prec = _precision(a)
    specs, images, labels, info = population(a.population, a.num_archs)
    sizes = [int(b) for b in a.batches.split(",")]
    ips: dict[int, dict[str, float]] = {b: {} for b in sizes}
    for spec in specs:
        steps = {b: TrainStep(objective_for(a.objective, spec, info), prec) for b in sizes}
        bs = {b: iter(_batches(images, labels, b, a.repeats + 1)) for b in sizes}
        cpu: dict = {}
        alternate({b: (lambda b=b: steps[b](*next(bs[b]))) for b in sizes}, a.repeats, cpu=cpu)
        for b in sizes:
            ips[b][spec.arch_id] = b / statistics.median(cpu[b])
    base = sizes[0]
    return {"precision": prec, "images_per_s": {b: {x: round(v, 1) for x, v in d.items()} for b, d in ips.items()},
            **{f"batch_{b}_vs_{base}": _verdict({x: 1 / v for x, v in ips[base].items()},
                                                {x: 1 / v for x, v in ips[b].items()}) for b in sizes[1:]}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lever", choices=["precision", "hugepages", "compile", "batch", "shifted-grad"])
    p.add_argument("--population", choices=["digits", "cifar", "macro"], default="digits")
    p.add_argument("--num-archs", type=int, default=4)
    p.add_argument("--objective", default="rotation")
    p.add_argument("--steps", type=int, default=6, help="timed steps per candidate (after one untimed)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batches", default="64,128,256")
    p.add_argument("--precision", default="auto", help="auto | float32 | bfloat16")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--job-steps", type=int, default=80)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--profile", action="store_true",
                   help="precision: add the population's share of step time per kind of op (_step.op_breakdown)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.worker:
        print(json.dumps(worker(a)))
        return 0
    if not a.lever:
        p.error("--lever is required")
    res = {"precision": lever_precision, "hugepages": lever_hugepages, "compile": lever_compile,
           "batch": lever_batch, "shifted-grad": lever_shifted_grad}[a.lever](a)
    print(json.dumps({"benchmark": "levers", "lever": a.lever, "population": a.population, "num_archs": a.num_archs,
                      "objective": a.objective, "steps": a.steps, "batch": a.batch, "threads": a.threads,
                      "repeats": a.repeats, "torch": torch.__version__, "loadavg_1m": round(os.getloadavg()[0], 2),
                      **res}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
