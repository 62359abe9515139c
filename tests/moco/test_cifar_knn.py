"""Acceptance (slow, ~15 min on 2 CPU cores): MoCo on real CIFAR-10 beats random initialization.

A ResNet-18-layout backbone (3x3 stem, no max-pool, [2, 2, 2, 2] basic blocks; width
``UNNAS_MOCO_WIDTH``, default 16 to fit the CPU budget; ``UNNAS_MOCO_THREADS`` sets torch's
threads, 1 is fastest on a busy machine) is trained with the ``cifar`` preset
through the engine for ``UNNAS_MOCO_BUDGET`` seconds (default 600; the step count is fixed from
the speed of a few warm-up steps, so the cosine schedule completes). kNN (k=200, t=0.1, cosine)
on frozen features uses a class-balanced bank of 10,000 training images and 2,000 test images.
Run: ``pytest tests/moco/test_cifar_knn.py -m slow -s``; it prints one JSON line.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ARCHIVE = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpeg.tar.gz"


def cifar_tree() -> Path:
    from unnas.data.datasets import cache_dir

    root = cache_dir() / "cifar10-jpeg"
    if not (root / "cifar10" / "train").is_dir():
        if not ARCHIVE.is_file():
            pytest.skip(f"CIFAR-10 archive not found at {ARCHIVE}")
        root.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "xzf", str(ARCHIVE), "-C", str(root)], check=True)
    return root / "cifar10"


def balanced(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                                   for c in np.unique(labels)]))


@pytest.mark.slow
def test_moco_cifar10_knn_beats_random_init():
    from unnas.eval.features import extract_features
    from unnas.eval.knn import knn_accuracy
    from unnas.moco.objective import MocoOptions

    from unnas.config import TrainConfig
    from unnas.data.core import Split
    from unnas.data.datasets import load_image_tree
    from unnas.engine import train
    from unnas.generators.resnet import ResNet
    from unnas.objectives.base import DataInfo, build_objective

    budget = float(os.environ.get("UNNAS_MOCO_BUDGET", 600))
    width = int(os.environ.get("UNNAS_MOCO_WIDTH", 16))
    threads = int(os.environ.get("UNNAS_MOCO_THREADS", 0))
    if threads:
        torch.set_num_threads(threads)
    batch = int(os.environ.get("UNNAS_MOCO_BATCH", 128))
    tree = cifar_tree()
    xtr, ytr, _ = load_image_tree(tree / "train")
    xte, yte, _ = load_image_tree(tree / "test")
    train_split = Split(torch.from_numpy(xtr), torch.from_numpy(ytr))
    bank = balanced(ytr, 1000, 0)
    query = balanced(yte, 200, 1)
    mean = tuple(float(v) for v in xtr[:10000].reshape(10000, 3, -1).transpose(1, 0, 2).reshape(3, -1).mean(1) / 255)
    std = tuple(float(v) for v in xtr[:10000].reshape(10000, 3, -1).transpose(1, 0, 2).reshape(3, -1).std(1) / 255)
    info = DataInfo(3, 10, (32, 32), mean, std)
    object.__setattr__(info, "num_train", len(ytr))
    torch.manual_seed(0)
    objective = build_objective("moco", ResNet([2, 2, 2, 2], width, 3, None), info,
                                MocoOptions(version="cifar", queue_size=4096))

    def knn() -> float:
        ftr = extract_features(objective, torch.from_numpy(xtr[bank]), 256)
        fte = extract_features(objective, torch.from_numpy(xte[query]), 256)
        return knn_accuracy(ftr, ytr[bank], fte, yte[query], k=200, t=0.1, num_classes=10)

    t0 = time.perf_counter()
    random_init = knn()
    eval_seconds = time.perf_counter() - t0
    # speed of a training step (on a throw-away copy), to fix the step budget
    import copy

    probe = copy.deepcopy(objective).train()
    opt = torch.optim.SGD([p for p in probe.parameters() if p.requires_grad], lr=0.0)
    g = torch.Generator().manual_seed(0)
    times = []
    for i in range(4):
        t = time.perf_counter()
        out = probe(train_split.images[i * batch:(i + 1) * batch], None, g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        probe.after_step()
        times.append(time.perf_counter() - t)
    del probe, opt
    step_seconds = float(np.median(times[1:]))
    steps = max(10, int(budget / step_seconds))
    cfg = TrainConfig(steps=steps, batch_size=batch, lr=0.06, weight_decay=5e-4, momentum=0.9,
                      precise_bn=2048, checkpoint=False, deterministic=False)
    t1 = time.perf_counter()
    result = train(objective, train_split, cfg, seed=0)
    train_seconds = time.perf_counter() - t1
    trained = knn()
    report = {"benchmark": "moco_cifar10_knn", "backbone": f"resnet18-layout width {width}", "batch": batch,
              "steps": steps, "epochs": round(steps * batch / len(ytr), 3), "train_seconds": round(train_seconds, 1),
              "knn_random_init": random_init, "knn_moco": trained, "knn_bank": len(bank), "knn_queries": len(query),
              "final_loss": result.history[-1]["loss"], "final_instance_acc": result.history[-1]["acc"],
              "eval_seconds": round(eval_seconds, 1), "threads": torch.get_num_threads()}
    print(json.dumps(report))
    assert trained > random_init + 0.03, report
