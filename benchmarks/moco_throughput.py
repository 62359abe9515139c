"""Throughput of one MoCo v2 training step, ours against lightly's recipe, on the same backbone.

Both sides train the same ResNet-18-layout backbone (3x3 stem, [2, 2, 2, 2] basic blocks) with
a 2-layer MLP head (hidden = backbone width, 128-d output), a queue of 4,096 keys, T = 0.2,
m = 0.999, SGD, on the same 32x32 images and batch size, and run the same number of steps:

* **ours**: uint8 images in memory, ``moco.objective.Moco`` (preset v2) does the batched two-view
  augmentation, split BN with the key shuffle, InfoNCE against the queue and the EMA update,
  trained as the engine trains on a CPU (channels-last, ``--precision``: by default what a run
  on this machine uses, bfloat16 autocast on a CPU with bfloat16 arithmetic).
* **lightly**: a torchvision-style dataset of PIL images, ``lightly.transforms.MoCoV2Transform``
  (per-image PIL/torchvision transforms, blur sigmas scaled to 32 px as ours) in a
  ``DataLoader`` with worker processes, ``MoCoProjectionHead``, ``NTXentLoss`` with a memory
  bank, ``batch_shuffle``/``batch_unshuffle`` and ``update_momentum`` (lightly's MoCo v2 example).

lightly runs in each of ``--lightly-precisions`` (float32, and bfloat16 autocast over its
forward and loss); the faster is the reference ("its best precision on this machine"). The
sides alternate for ``--rounds`` rounds of ``--steps`` steps after one warm-up round; images/s
are medians over rounds. Images come from the cached CIFAR-10 tree when present, else seeded
random images. Prints one JSON line. Needs the ``bench`` extra (``pip install -e '.[bench]'``).
Same threads on both sides (``--threads``, default 1); lightly also has ``--workers`` data
processes (default 1), ours none.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _step import TrainStep, alternate, op_breakdown  # noqa: E402


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


class Ours:
    """``moco.objective.Moco`` (preset v2) trained as the engine does on a CPU (``_step.TrainStep``:
    channels-last, the run's precision, SGD)."""

    def __init__(self, images: np.ndarray, args, mean, std, precision: str):
        from unnas.moco.objective import MocoOptions

        from unnas.objectives.base import DataInfo, build_objective

        info = DataInfo(3, 10, (32, 32), mean, std)
        obj = build_objective("moco", backbone(args.width), info,
                              MocoOptions(version="v2", queue_size=args.queue, bn_splits=args.bn_splits)).train()
        self.step = TrainStep(obj, precision, lr=0.03)
        self.data = torch.from_numpy(images)
        self.order = torch.randperm(len(self.data), generator=torch.Generator().manual_seed(0))
        self.i, self.batch = 0, args.batch

    def __call__(self) -> None:
        b = self.order[(self.i * self.batch) % (len(self.data) - self.batch):][: self.batch]
        self.i += 1
        self.step(self.data[b])


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


class Lightly:
    """lightly's MoCo v2 example: PIL images through ``MoCoV2Transform`` in a ``DataLoader``,
    ``MoCoProjectionHead``, ``NTXentLoss`` with a memory bank, batch shuffle, momentum update;
    forward and loss under ``precision`` autocast (``float32``: none)."""

    def __init__(self, images: np.ndarray, args, mean, std, precision: str, channels_last: bool = False):
        from lightly.loss import NTXentLoss
        from lightly.models.modules import MoCoProjectionHead
        from lightly.models.utils import deactivate_requires_grad
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
        transform = MoCoV2Transform(input_size=32, min_scale=0.2, gaussian_blur=0.5,
                                    sigmas=(0.1 * scale, 2.0 * scale), normalize={"mean": list(mean), "std": list(std)})
        self.loader = torch.utils.data.DataLoader(PILImages(images, transform), batch_size=args.batch, shuffle=True,
                                                  drop_last=True, num_workers=args.workers,
                                                  persistent_workers=args.workers > 0,
                                                  generator=torch.Generator().manual_seed(0))
        self.model = LightlyMoCo(backbone(args.width)).train()
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.criterion = NTXentLoss(temperature=0.2, memory_bank_size=(args.queue, 128))
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.03, momentum=0.9, weight_decay=1e-4)
        self.precision = precision
        self.it = iter(self.loader)

    def __call__(self) -> None:
        from lightly.models.utils import batch_shuffle, batch_unshuffle, update_momentum

        try:
            views = next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            views = next(self.it)
        x_query, x_key = views
        if self.channels_last:
            x_query, x_key = (v.contiguous(memory_format=torch.channels_last) for v in (x_query, x_key))
        model = self.model
        update_momentum(model.backbone, model.backbone_momentum, m=0.999)
        update_momentum(model.projection_head, model.projection_head_momentum, m=0.999)
        ctx = (torch.autocast("cpu", dtype=torch.bfloat16) if self.precision == "bfloat16"
               else contextlib.nullcontext())
        with ctx:
            query = model(x_query)
            x_key, shuffle = batch_shuffle(x_key)
            key = batch_unshuffle(model.forward_momentum(x_key), shuffle)
            loss = self.criterion(query, key)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per side and round")
    ap.add_argument("--width", type=int, default=64, help="backbone width (64 = ResNet-18)")
    ap.add_argument("--queue", type=int, default=4096)
    ap.add_argument("--bn-splits", type=int, default=0, help="ours: split-BN groups (0 = automatic)")
    ap.add_argument("--workers", type=int, default=1, help="lightly: DataLoader workers")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    ap.add_argument("--precision", default="auto", help="ours: auto | float32 | bfloat16 (auto: what a run uses)")
    ap.add_argument("--lightly-precisions", default="float32,bfloat16",
                    help="lightly is measured in each; the fastest is the reference")
    ap.add_argument("--lightly-channels-last", action="store_true",
                    help="also measure lightly with a channels-last model and inputs (reported, not the reference)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds alternating the sides; medians count")
    ap.add_argument("--profile", action="store_true", help="add each side's share of step time per kind of op")
    ap.add_argument("--images", type=int, default=8192)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from unnas.config import TrainConfig
    from unnas.precision import resolve_precision

    ours_precision = resolve_precision(TrainConfig(precision=args.precision), "cpu")
    images, source = load_images(max(args.images, 2 * args.batch), seed=0)
    xf = images.reshape(len(images), 3, -1).astype(np.float64) / 255
    mean = tuple(float(v) for v in xf.mean(axis=(0, 2)))
    std = tuple(float(v) for v in xf.std(axis=(0, 2)))
    sides = {"ours": Ours(images, args, mean, std, ours_precision)}
    for p in [s.strip() for s in args.lightly_precisions.split(",") if s.strip()]:
        sides[f"lightly_{p}"] = Lightly(images, args, mean, std, p)
        if args.lightly_channels_last:
            sides[f"lightly_{p}_channels_last"] = Lightly(images, args, mean, std, p, channels_last=True)

    def steps(side):
        def run():
            for _ in range(args.steps):
                side()
        return run

    cpu: dict[str, list[float]] = {}
    times = alternate({k: steps(v) for k, v in sides.items()}, args.rounds, warmup=1, cpu=cpu)
    ips = {k: args.batch * args.steps / statistics.median(v) for k, v in times.items()}
    ref = max((k for k in ips if k.startswith("lightly_") and not k.endswith("_channels_last")), key=ips.get)
    per_round = [ti_ref / ti for ti, ti_ref in zip(times["ours"], times[ref])]
    shares = {k: op_breakdown(v) for k, v in sides.items()} if args.profile else None
    import lightly

    print(json.dumps({"benchmark": "moco_throughput", "images": source, "batch": args.batch,
                      "backbone": f"resnet18-layout width {args.width}", "steps": args.steps, "rounds": args.rounds,
                      "threads": torch.get_num_threads(), "lightly_workers": args.workers,
                      "lightly_version": lightly.__version__, "torch": torch.__version__,
                      "ours_precision": ours_precision, "reference": ref,
                      "images_per_s": {k: round(v, 2) for k, v in ips.items()},
                      "ratio": round(ips["ours"] / ips[ref], 3),
                      "ratio_per_round": [round(v, 3) for v in per_round],
                      "seconds_per_round": {k: [round(x, 2) for x in v] for k, v in times.items()},
                      # this process only: lightly's DataLoader workers are not counted
                      "cpu_seconds_per_round": {k: [round(x, 2) for x in v] for k, v in cpu.items()},
                      **({"time_share": shares} if shares else {}),
                      "loadavg_1m": round(os.getloadavg()[0], 2)}))


if __name__ == "__main__":
    main()
