"""Throughput of one MoCo v2 training step, ours against lightly's recipe, on the same backbone.

Both sides train the same ResNet-18-layout backbone (3x3 stem, [2, 2, 2, 2] basic blocks) with
a 2-layer MLP head (hidden = backbone width, 128-d output), a queue of 4,096 keys, T = 0.2,
m = 0.999, SGD, on the same 32x32 images and batch size, and run the same number of steps:

* **ours**: uint8 images in memory, ``moco.objective.Moco`` (preset v2) does the batched two-view
  augmentation, split BN with the key shuffle, InfoNCE against the queue and the EMA update.
* **lightly**: a torchvision-style dataset of PIL images, ``lightly.transforms.MoCoV2Transform``
  (per-image PIL/torchvision transforms, blur sigmas scaled to 32 px as ours) in a
  ``DataLoader`` with worker processes, ``MoCoProjectionHead``, ``NTXentLoss`` with a memory
  bank, ``batch_shuffle``/``batch_unshuffle`` and ``update_momentum`` (lightly's MoCo v2 example).

Images come from the cached CIFAR-10 tree when present, else seeded random images. Prints one
JSON line: images/s of each side (best of ``--rounds``) and their ratio. Needs the ``bench``
extra (``pip install -e '.[bench]'``). On a shared 2-core machine, one torch thread per process
is the fastest setting for both sides: ``--threads 1 --workers 1`` (lightly then has one extra
process for its data pipeline, ours has none).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time

import numpy as np
import torch
from torch import nn


def load_images(n: int, seed: int) -> tuple[np.ndarray, str]:
    from unnas.data.datasets import cache_dir, load_image_tree

    tree = cache_dir() / "cifar10-jpeg" / "cifar10" / "train"
    if tree.is_dir():
        x, _, _ = load_image_tree(tree)
        idx = np.random.default_rng(seed).permutation(len(x))[:n]
        return np.ascontiguousarray(x[idx]), "cifar10"
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8), "random"


def backbone(width: int) -> nn.Module:
    from unnas.generators.resnet import ResNet

    torch.manual_seed(0)
    return ResNet([2, 2, 2, 2], width, 3, None)


def bench_ours(images: np.ndarray, args, mean, std) -> float:
    from moco.objective import MocoOptions
    from unnas.objectives.base import DataInfo, build_objective

    info = DataInfo(3, 10, (32, 32), mean, std)
    obj = build_objective("moco", backbone(args.width), info,
                          MocoOptions(version="v2", queue_size=args.queue, bn_splits=args.bn_splits)).train()
    params = [p for p in obj.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.03, momentum=0.9, weight_decay=1e-4)
    data = torch.from_numpy(images)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(data), generator=g)
    t0 = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            t0 = time.perf_counter()
        b = order[(step * args.batch) % (len(data) - args.batch):][: args.batch]
        out = obj(data[b], None, g)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        obj.after_step()
    return args.batch * args.steps / (time.perf_counter() - t0)


class PILImages(torch.utils.data.Dataset):
    """What torchvision's CIFAR10 dataset does: a PIL image per item, then the transform."""

    def __init__(self, images: np.ndarray, transform):
        self.images = images.transpose(0, 2, 3, 1)  # HWC
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i]))


def bench_lightly(images: np.ndarray, args, mean, std) -> float:
    from lightly.loss import NTXentLoss
    from lightly.models.modules import MoCoProjectionHead
    from lightly.models.utils import batch_shuffle, batch_unshuffle, deactivate_requires_grad, update_momentum
    from lightly.transforms import MoCoV2Transform

    class LightlyMoCo(nn.Module):
        def __init__(self, net: nn.Module):
            super().__init__()
            self.backbone = net
            self.projection_head = MoCoProjectionHead(net.num_features, net.num_features, 128)
            self.backbone_momentum = copy.deepcopy(self.backbone)
            self.projection_head_momentum = copy.deepcopy(self.projection_head)
            deactivate_requires_grad(self.backbone_momentum)
            deactivate_requires_grad(self.projection_head_momentum)

        def forward(self, x):
            return self.projection_head(self.backbone.pooled(x))

        def forward_momentum(self, x):
            return self.projection_head_momentum(self.backbone_momentum.pooled(x)).detach()

    scale = 32 / 224
    transform = MoCoV2Transform(input_size=32, min_scale=0.2, gaussian_blur=0.5, sigmas=(0.1 * scale, 2.0 * scale),
                                normalize={"mean": list(mean), "std": list(std)})
    loader = torch.utils.data.DataLoader(PILImages(images, transform), batch_size=args.batch, shuffle=True,
                                         drop_last=True, num_workers=args.workers,
                                         persistent_workers=args.workers > 0,
                                         generator=torch.Generator().manual_seed(0))
    model = LightlyMoCo(backbone(args.width)).train()
    criterion = NTXentLoss(temperature=0.2, memory_bank_size=(args.queue, 128))
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
    it = iter(loader)
    t0 = 0.0
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            t0 = time.perf_counter()
        try:
            views = next(it)
        except StopIteration:
            it = iter(loader)
            views = next(it)
        x_query, x_key = views
        update_momentum(model.backbone, model.backbone_momentum, m=0.999)
        update_momentum(model.projection_head, model.projection_head_momentum, m=0.999)
        query = model(x_query)
        x_key, shuffle = batch_shuffle(x_key)
        key = batch_unshuffle(model.forward_momentum(x_key), shuffle)
        loss = criterion(query, key)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return args.batch * args.steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per side and round")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--width", type=int, default=64, help="backbone width (64 = ResNet-18)")
    ap.add_argument("--queue", type=int, default=4096)
    ap.add_argument("--bn-splits", type=int, default=0, help="ours: split-BN groups (0 = automatic)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="lightly: DataLoader workers")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--rounds", type=int, default=2, help="alternate the two sides this many times; best counts")
    ap.add_argument("--images", type=int, default=4096)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    images, source = load_images(max(args.images, 2 * args.batch), seed=0)
    xf = images.reshape(len(images), 3, -1).astype(np.float64) / 255
    mean = tuple(float(v) for v in xf.mean(axis=(0, 2)))
    std = tuple(float(v) for v in xf.std(axis=(0, 2)))
    ours, theirs = [], []
    for _ in range(args.rounds):
        ours.append(bench_ours(images, args, mean, std))
        theirs.append(bench_lightly(images, args, mean, std))
    import lightly

    print(json.dumps({"benchmark": "moco_throughput", "images": source, "batch": args.batch,
                      "backbone": f"resnet18-layout width {args.width}", "steps": args.steps,
                      "threads": torch.get_num_threads(), "lightly_workers": args.workers,
                      "lightly_version": lightly.__version__, "torch": torch.__version__,
                      "ours_images_per_s": round(max(ours), 2), "lightly_images_per_s": round(max(theirs), 2),
                      "ratio": round(max(ours) / max(theirs), 3),
                      "ours_rounds": [round(v, 2) for v in ours], "lightly_rounds": [round(v, 2) for v in theirs]}))


if __name__ == "__main__":
    main()
