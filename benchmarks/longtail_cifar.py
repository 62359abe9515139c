"""CIFAR-10-LT (rho = 100) decoupling benchmark: joint vs NCM / cRT / tau-norm / LWS.

A small CIFAR ResNet (3 stages of one basic block, width 16) is trained on CIFAR-10-LT with
instance-balanced sampling for a fixed CPU budget (stage 1); stage 2 re-balances its classifier
on the frozen features. The validation split (500 images per class) is carved from the balanced
training set before the long-tail subsampling, so the training split follows the exponential
profile from n_max = 4500 down to 45 images per class; the test split is the balanced official one.

Data: the ImageFolder tree of ``../shared/data/cifar10-jpeg.tar.gz``, extracted once into
``${UNNAS_CACHE:-~/.cache/unnas}/cifar10-jpeg``. Prints the table and, last, one JSON line.

    python benchmarks/longtail_cifar.py [--epochs 24] [--threads 1] [--runs-dir runs/bench]

Measured with the defaults (24 epochs, 2088 steps of 128, seed 0; about 34 min wall on two
shared, heavily loaded CPU cores). Top-1 %, many > 351.6 / few < 70.3 training images (the
paper's 100 / 20 scaled by 4500 / 1280: 5 / 4 / 1 classes):

    method     Many  Medium   Few   All
    Joint      73.7    24.5   1.1  46.8
    NCM        59.9    62.3  51.6  60.0
    cRT        66.9    59.6  59.3  63.2
    tau-norm   69.6    46.9  40.5  57.6   (tau = 1.4 on the balanced validation split)
    LWS        65.9    55.2  47.5  59.8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ARCHIVE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10-jpeg.tar.gz"


def cifar_tree() -> Path | None:
    """The extracted CIFAR-10 ImageFolder tree (extracting the shared archive once), or None."""
    from unnas.data.datasets import cache_dir

    root = cache_dir() / "cifar10-jpeg"
    tree = root / "cifar10"
    if (tree / "train").is_dir() and (tree / "test").is_dir():
        return tree
    if not ARCHIVE.is_file():
        return None
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "xzf", str(ARCHIVE), "-C", str(root)], check=True)
    return tree


def run(epochs: int = 24, threads: int = 1, runs_dir: str = "runs/bench", width: int = 16, seed: int = 0,
        batch_size: int = 128, lr: float = 0.1, stage2_views: int = 0, quiet: bool = True) -> dict:
    from unnas.eval.decoupled import DecoupledOptions

    from unnas import config
    from unnas.longtail_run import LongtailOptions, run_longtail

    tree = cifar_tree()
    if tree is None:
        raise FileNotFoundError(f"CIFAR-10 archive not found at {ARCHIVE}")
    base = {"data": {"name": "imagefolder-lt", "root": str(tree), "imbalance": 100.0, "val_fraction": 0.1},
            "model": {"generator": "resnet", "params": {"depths": [1, 1, 1], "width": width}},
            "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "weight_decay": 5e-4,
                      "warmup_epochs": 1.0, "threads": threads, "precise_bn": 2048},
            "run": {"pretext": "supervised", "num_archs": 1, "runs_dir": runs_dir, "device": "cpu",
                    "name": f"cifar10-lt-r100-w{width}-e{epochs}-s{seed}-v{stage2_views}"}}
    cfg = config.load(None, [], base=base)
    opts = LongtailOptions(arch="resnet", seed=seed, stage2_views=stage2_views, stage2=DecoupledOptions())
    t0 = time.time()
    summary = run_longtail(cfg, opts, quiet=quiet)
    res = next(iter(summary["results"].values()))
    table = {m: {g: round(100 * r[g], 2) for g in ("many", "medium", "few", "all")} for m, r in res["methods"].items()}
    joint = table["joint"]
    return {"benchmark": "longtail_cifar10_lt_r100", "epochs": epochs, "width": width, "seed": seed,
            "stage2_views": stage2_views, "seconds": round(time.time() - t0, 1),
            "train_counts": res["train_counts"], "thresholds": res["thresholds"], "group_sizes": res["group_sizes"],
            "tau": res["methods"]["tau_norm"]["tau"], "table": table,
            "beats_joint": {m: {"few": table[m]["few"] > joint["few"], "all": table[m]["all"] > joint["all"]}
                            for m in ("ncm", "crt", "tau_norm", "lws")},
            "run_dir": summary["run_dir"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stage2-views", type=int, default=0)
    p.add_argument("--runs-dir", default="runs/bench")
    a = p.parse_args(argv)
    if cifar_tree() is None:
        print(json.dumps({"benchmark": "longtail_cifar10_lt_r100", "skipped": f"no data at {ARCHIVE}"}))
        return 0
    out = run(a.epochs, a.threads, a.runs_dir, a.width, a.seed, stage2_views=a.stage2_views, quiet=False)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
