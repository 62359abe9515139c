"""Zero-cost proxies on NAS-Bench-Macro: Spearman against the published accuracy, seconds per network.

    nice -n 10 python benchmarks/proxies.py [--n 200] [--seed 0] [--proxies all] [--workers 1] \
        [--out runs/proxies-macro-s0.jsonl]

``--n`` networks are drawn uniformly without replacement from the 6,561 of NAS-Bench-Macro
(``numpy.random.default_rng(seed)``) and built at width 1 (the published network; weights from
``torch.manual_seed(seed * 6561 + index)``), each with a rotation objective (the default label-free
loss). Every proxy sees the same fixed batch of CIFAR-10 training images (drawn with the same seed;
``../shared/data``, see ``benchmarks/_cifar.py``), no label. ``swap_reg`` is centred on the drawn
population's sizes (:func:`unnas.eval.proxies.patterns.population_prior`: parameter counts only).

Per network, the baseline ``train_step`` (forward and backward of the rotation loss on 32 images,
one step of UnNAS's CIFAR-10 rotation recipe) is timed first, then every proxy; a proxy's cost is reported as the
median seconds per network and the median ratio to that network's training step (so a change of
machine load affects both sides alike). Agreement: Spearman's rho and Kendall's tau
(``scipy.stats``) of each proxy's value (``log10`` for log-scaled proxies) with the table's
``mean_acc``; ``params`` and ``flops`` are the baselines (the table's own ``params``/``flops``
columns too). Every finished network is appended to ``--out`` (JSON lines) at once: an interrupted
run resumes where it stopped. One JSON line on stdout; progress on stderr.

``--speed`` measures speed instead (``benchmarks/_proxy_speed.py``; ``docs/results/proxy-speed.md``):
per proxy on NAS-Bench-201 cells at the published size and NAS-Bench-Macro networks, its seconds per
network, its counted arithmetic at the matmul peak measured in the same run (the bound), the fraction
achieved, and with ``--authors-dir DIR`` the ratio against the authors' code on the same networks
(``null`` with the reason without it)::

    nice -n 10 python benchmarks/proxies.py --speed [--nb201 3] [--macro 2] [--profile] [--authors-dir DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from unnas.eval.proxies import NonFiniteProxy, ProxyInput, compute_proxy, images_needed, scaled
from unnas.eval.proxies.patterns import population_prior

from unnas.generators.complexity import complexity
from unnas.generators.macro import N_ARCHS, arch_index, from_index
from unnas.objectives import DataInfo, build_objective
from unnas.registry import PROXIES
from unnas.spec import ArchSpec, build

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT.parent / "shared" / "data" / "nas-bench-macro-cifar10.json"
STEP_BATCH = 32  # UnNAS's rotation batch on CIFAR-10

_STATE: dict = {}


def _init_worker(state: dict, threads: int) -> None:
    torch.set_num_threads(threads)
    _STATE.update(state)


def _network(arch: str):
    seed, info = _STATE["seed"], _STATE["info"]
    torch.manual_seed(seed * N_ARCHS + arch_index(arch))
    backbone = build(ArchSpec("macro", {"arch": arch, "width": 1.0}), 3)
    return build_objective("rotation", backbone, info)


def measure(job: tuple[str, list[str]]) -> dict:
    """One network: the training-step baseline, then the given proxies (value, seconds, and seconds
    over the training step's)."""
    arch, names = job
    obj = _network(arch)
    images = _STATE["images"]
    gen = torch.Generator().manual_seed(_STATE["seed"] * N_ARCHS + arch_index(arch))
    step = copy.deepcopy(obj).train()
    t = time.perf_counter()
    step(images[:STEP_BATCH], None, torch.Generator().manual_seed(0))["loss"].backward()
    step_s = time.perf_counter() - t
    del step
    out = {"arch": arch, "train_step_s": step_s, "values": {}, "seconds": {}, "steps": {}, "errors": {}}
    x = ProxyInput(obj, images, gen)
    for name in names:
        t = time.perf_counter()
        try:
            out["values"][name] = compute_proxy(name, x, _STATE["options"].get(name))
        except NonFiniteProxy as e:
            out["values"][name] = None
            out["errors"][name] = str(e)
        out["seconds"][name] = time.perf_counter() - t
        out["steps"][name] = out["seconds"][name] / step_s
    return out


def merge(records: list[dict]) -> dict:
    """The records of one network (one per run that measured some of its proxies), merged."""
    out = {"arch": records[0]["arch"], "values": {}, "seconds": {}, "steps": {}, "errors": {}}
    for r in records:
        for key in ("values", "seconds", "steps", "errors"):
            out[key].update(r[key])
    return out


def agreement(rows: list[dict], table: dict, name: str, key=None) -> dict:
    xs, ys = [], []
    for r in rows:
        v = r["values"].get(name) if key is None else table[r["arch"]][key]
        if v is None:
            continue
        xs.append(scaled(name, v) if key is None else v)
        ys.append(table[r["arch"]]["mean_acc"])
    if len(xs) < 3:
        return {"n": len(xs)}
    rho = stats.spearmanr(xs, ys).statistic
    tau = stats.kendalltau(xs, ys).statistic
    return {"spearman": round(float(rho), 4), "kendall": round(float(tau), 4), "n": len(xs)}


def summarize(rows: list[dict], table: dict, proxies: list[str], config: dict, step_s: list[float]) -> dict:
    out = {"benchmark": "proxies", **config, "networks": len(rows),
           "train_step_s_median": round(statistics.median(step_s), 3) if step_s else None, "proxies": {}}
    for name in proxies:
        have = [r for r in rows if name in r["seconds"]]
        if not have:
            continue
        out["proxies"][name] = {**agreement(have, table, name),
                                "s_per_network_median": round(statistics.median(r["seconds"][name] for r in have), 4),
                                "train_steps_median": round(statistics.median(r["steps"][name] for r in have), 4),
                                "not_finite": sum(1 for r in have if r["values"][name] is None)}
    out["table_baselines"] = {k: agreement(rows, table, k, key=k) for k in ("params", "flops")}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--proxies", default="all", help="comma-separated names, or all")
    p.add_argument("--table", default=str(TABLE))
    p.add_argument("--out", default="", help="JSON lines of finished networks (default runs/proxies-macro-s<seed>.jsonl)")
    p.add_argument("--workers", type=int, default=1, help="processes, one intra-op thread each")
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per process (speed mode: 1 = CPU seconds)")
    p.add_argument("--speed", action="store_true",
                   help="speed mode: seconds per network against the arithmetic bound and the authors' code")
    p.add_argument("--authors-dir", default="", help="speed mode: folder with the authors' repositories")
    p.add_argument("--nb201", type=int, default=3, help="speed mode: NAS-Bench-201 cells (C=16, N=5)")
    p.add_argument("--macro", type=int, default=2, help="speed mode: NAS-Bench-Macro networks (width 1)")
    p.add_argument("--repeats", type=int, default=2, help="speed mode: timed runs per proxy (the best counts)")
    p.add_argument("--profile", action="store_true", help="speed mode: the share of each proxy's time per kind of op")
    a = p.parse_args(argv)
    proxies = PROXIES.names() if a.proxies == "all" else a.proxies.split(",")
    for name in proxies:
        PROXIES.get(name)
    if a.speed:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _proxy_speed import main as speed_main

        return speed_main(a, proxies)
    table = json.loads(Path(a.table).read_text())
    rng = np.random.default_rng(a.seed)
    archs = [from_index(int(i)) for i in rng.choice(N_ARCHS, size=a.n, replace=False)]

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _cifar import cifar10_images

    x, _ = cifar10_images("train")  # labels are not used
    channels = [x[:, c].astype(np.float32) / 255.0 for c in range(x.shape[1])]
    mean, std = tuple(float(c.mean()) for c in channels), tuple(float(c.std()) for c in channels)
    del channels
    prior = population_prior([complexity(ArchSpec("macro", {"arch": s, "width": 1.0}))["params"] for s in archs])
    options = {"swap_reg": prior}
    need = max(images_needed(n, options.get(n)) for n in PROXIES.names())  # the same batch whatever --proxies
    images = torch.from_numpy(x[np.sort(rng.choice(len(x), size=max(need, STEP_BATCH), replace=False))])
    config = {"n": a.n, "seed": a.seed, "space": "nas-bench-macro", "width": 1.0, "objective": "rotation",
              "batch_images": int(images.shape[0]), "swap_reg": {k: round(v, 3) for k, v in prior.items()},
              "workers": a.workers, "threads": a.threads}

    out_path = Path(a.out or ROOT / "runs" / f"proxies-macro-s{a.seed}.jsonl")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    records: dict[str, list[dict]] = {s: [] for s in archs}
    if out_path.exists():
        for line in out_path.read_text().splitlines():
            r = json.loads(line)
            if r["arch"] in records:
                records[r["arch"]].append(r)
    todo = []
    for s in archs:
        have = set(merge(records[s])["values"]) if records[s] else set()
        if set(proxies) - have:
            todo.append((s, [n for n in proxies if n not in have]))
    print(f"{len(archs) - len(todo)} of {len(archs)} networks already measured in {out_path}; {len(todo)} to go",
          file=sys.stderr)
    state = {"seed": a.seed, "info": DataInfo(3, 10, (32, 32), mean, std), "images": images, "proxies": proxies,
             "options": options}
    t0 = time.time()
    with open(out_path, "a") as f:
        def record(r: dict, k: int) -> None:
            records[r["arch"]].append(r)
            f.write(json.dumps(r) + "\n")
            f.flush()
            os.fsync(f.fileno())
            eta = (time.time() - t0) / k * (len(todo) - k)
            print(f"[{k}/{len(todo)}] {r['arch']} step {r['train_step_s']:.2f}s proxies "
                  f"{sum(r['seconds'].values()):.1f}s  eta {eta / 60:.0f} min", file=sys.stderr, flush=True)

        if a.workers <= 1:
            _init_worker(state, a.threads)
            for k, job in enumerate(todo, 1):
                record(measure(job), k)
        else:
            with mp.get_context("spawn").Pool(a.workers, _init_worker, (state, a.threads)) as pool:
                for k, r in enumerate(pool.imap_unordered(measure, todo), 1):
                    record(r, k)
    step_s = [r["train_step_s"] for s in archs for r in records[s]]
    rows = [merge(records[s]) for s in archs if records[s]]
    summary = summarize(rows, table, proxies, config, step_s)
    summary["wall_s"] = round(time.time() - t0, 1)
    summary["load_avg_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
