"""Throughput of the batched pretext objectives next to a per-sample reference pipeline.

For rotation, jigsaw and colorization, on the same CIFAR-10 images, backbone and batch size:

* ``ours``: the objective's batched tensor pipeline on uint8 batches (``objective.prepare``);
* ``ref``: the per-sample way of the original UnNAS code: a ``torch.utils.data.Dataset`` whose
  ``__getitem__`` prepares one image with numpy / PIL (flip, pad-and-crop, ``np.rot90``; tile
  loop with random gaps and per-tile normalization; per-image Lab conversion and a
  ``sklearn.neighbors.NearestNeighbors`` lookup of the ab bins), batched by a ``DataLoader``.

Two figures each, in images per second (source images, not rotated copies or tiles):

* ``prep``: input pipeline only (uint8 images -> model-ready inputs and targets);
* ``step``: a whole training step, the pipeline plus forward, backward and an SGD step of the
  same backbone and head (with ``--workers > 0`` the reference prepares in parallel processes).

Each figure is the median of ``--repeats`` timed passes after one warm-up pass; the passes of
ours and of the reference alternate, so a change of machine load affects both alike. By default
both sides get one core (``--threads 1``, ``--workers 0``): the comparison is per core. One JSON
line per objective. Data: ``../shared/data/cifar10-jpeg.tar.gz`` (see ``benchmarks/_cifar.py``).

    python benchmarks/pretext_throughput.py [--split test] [--batch 128] [--threads 1] [--workers 0] [--repeats 5]
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

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cifar import cifar10_images  # noqa: E402
from unnas.pretext.color import ab_gamut  # noqa: E402
from unnas.pretext.jigsaw import Jigsaw  # noqa: E402

from unnas.objectives.base import DataInfo, build_objective, objective_class  # noqa: E402
from unnas.spec import ArchSpec, build  # noqa: E402

OBJECTIVES = ("rotation", "jigsaw", "colorization")


# ---------------------------------------------------------------- per-sample reference
_M = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
_WHITE = np.array([0.95047, 1.0, 1.08883])


def _rgb2lab(im: np.ndarray) -> np.ndarray:
    """One HWC uint8 sRGB image -> HWC float64 Lab (D65), the scikit-image formula in numpy."""
    c = im.astype(np.float64) / 255.0
    lin = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    t = lin @ (_M / _WHITE[:, None]).T
    f = np.where(t > (6 / 29) ** 3, np.cbrt(t), t / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


class Reference(torch.utils.data.Dataset):
    """Per-sample preparation of one objective, the way the UnNAS data loaders do it."""

    def __init__(self, name: str, images: np.ndarray, mean, std, perms: np.ndarray, seed: int = 0):
        self.name, self.images = name, images
        self.mean = np.asarray(mean, np.float32)[:, None, None]
        self.std = np.asarray(std, np.float32)[:, None, None]
        self.perms, self.seed = perms, seed
        self.rng = np.random.default_rng(seed)
        if name == "colorization":
            from sklearn.neighbors import NearestNeighbors

            self.nbrs = NearestNeighbors(n_neighbors=1).fit(ab_gamut().centers.numpy())

    def reseed(self, worker_id: int) -> None:
        self.rng = np.random.default_rng([self.seed, worker_id])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        im = self.images[i].transpose(1, 2, 0)  # HWC uint8
        if self.rng.random() < 0.5:
            im = im[:, ::-1]
        return getattr(self, "_" + self.name)(np.ascontiguousarray(im))

    def _norm(self, im: np.ndarray) -> np.ndarray:
        return (im.transpose(2, 0, 1).astype(np.float32) / 255.0 - self.mean) / self.std

    def _rotation(self, im):
        x = np.pad(self._norm(im), ((0, 0), (4, 4), (4, 4)))
        y0, x0 = self.rng.integers(0, 9, size=2)
        x = x[:, y0:y0 + 32, x0:x0 + 32]
        return np.stack([np.rot90(x, k, (1, 2)) for k in range(4)]).copy(), np.arange(4)

    def _jigsaw(self, im):
        if self.rng.random() < 0.3:
            im = np.asarray(Image.fromarray(im).convert("L").convert("RGB"))
        x = self._norm(im)
        label = int(self.rng.integers(len(self.perms)))
        perm = self.perms[label]
        cell, tile = 16, 12
        tiles = np.zeros((4, 3, tile, tile), np.float32)
        for i in range(2):
            for j in range(2):
                dy, dx = self.rng.integers(0, cell - tile + 1, size=2)
                t = x[:, cell * i + dy:cell * i + dy + tile, cell * j + dx:cell * j + dx + tile]
                tiles[int(np.flatnonzero(perm == 2 * i + j)[0])] = (t - t.mean()) / np.sqrt(t.var() + 1e-3)
        return tiles, label

    def _colorization(self, im):
        lab = _rgb2lab(im)
        x = ((lab[..., :1] / 100.0 - self.mean.mean()) / self.std.mean()).transpose(2, 0, 1).astype(np.float32)
        target = self.nbrs.kneighbors(lab[..., 1:].reshape(-1, 2), return_distance=False).reshape(im.shape[:2])
        return x, target


def _ref_batches(ds: Reference, batch: int, workers: int, n: int):
    sub = torch.utils.data.Subset(ds, range(n))
    init = (lambda w: torch.utils.data.get_worker_info().dataset.dataset.reseed(w)) if workers else None
    return torch.utils.data.DataLoader(sub, batch_size=batch, shuffle=False, num_workers=workers,
                                       drop_last=True, worker_init_fn=init, persistent_workers=False)


def _ref_model_step(name: str, obj, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if name == "rotation":
        logits = obj.head(obj.backbone.pooled(x.flatten(0, 1)))
        return F.cross_entropy(logits, y.flatten())
    return F.cross_entropy(obj.logits(x), y)  # jigsaw: tiles (B, P, C, t, t); colorization: L (B, 1, H, W)


# ---------------------------------------------------------------- timing
def _median_rates(fns: dict, n_images: int, repeats: int) -> dict:
    """Images per second of each function: one warm-up call each, then ``repeats`` rounds that call
    them in turn (so a change of machine load hits all alike); the median time per function."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: n_images / statistics.median(v) for k, v in times.items()}


def bench(name: str, images: np.ndarray, args) -> dict:
    x_all = torch.from_numpy(images)
    xf = x_all[:2048].float() / 255
    info = DataInfo(3, 10, (32, 32), tuple(xf.mean(dim=(0, 2, 3)).tolist()), tuple(xf.std(dim=(0, 2, 3)).tolist()))
    torch.manual_seed(0)
    spec = ArchSpec("resnet", {"depths": args.depths, "width": args.width}, 0)
    obj = build_objective(name, build(spec, objective_class(name).input_channels(3)), info).train()
    opt = torch.optim.SGD(obj.parameters(), lr=0.01, momentum=0.9)
    perms = obj.perms.numpy() if isinstance(obj, Jigsaw) else None
    ref = Reference(name, images, info.mean, info.std, perms)
    gen = torch.Generator().manual_seed(0)
    batch = args.batch

    def ours(n: int, step: bool) -> None:
        order = torch.randperm(n, generator=gen)
        for s in range(0, n - batch + 1, batch):
            imgs = x_all[order[s:s + batch]]
            if step:
                loss = obj(imgs, generator=gen)["loss"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            else:
                obj.prepare(imgs, gen)

    def reference(n: int, step: bool) -> None:
        for xb, yb in _ref_batches(ref, batch, args.workers, n):
            if step:
                loss = _ref_model_step(name, obj, xb, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    n_prep = (args.prep_images // batch) * batch
    n_step = (args.step_images // batch) * batch

    def ours_prep() -> None:
        with torch.no_grad():
            ours(n_prep, False)

    prep = _median_rates({"ours": ours_prep, "ref": lambda: reference(n_prep, False)}, n_prep, args.repeats)
    step = _median_rates({"ours": lambda: ours(n_step, True), "ref": lambda: reference(n_step, True)},
                         n_step, args.repeats)
    ours_prep, ref_prep, ours_step, ref_step = prep["ours"], prep["ref"], step["ours"], step["ref"]
    return {"benchmark": "pretext_throughput", "objective": name, "data": f"cifar10-{args.split}",
            "image_size": 32, "batch": batch, "backbone": f"resnet depths={args.depths} width={args.width}",
            "ours_prep_ips": round(ours_prep, 1), "ref_prep_ips": round(ref_prep, 1),
            "prep_speedup": round(ours_prep / ref_prep, 2),
            "ours_step_ips": round(ours_step, 1), "ref_step_ips": round(ref_step, 1),
            "step_speedup": round(ours_step / ref_step, 2),
            "prep_images": n_prep, "step_images": n_step, "repeats": args.repeats, "workers": args.workers,
            "threads": torch.get_num_threads(), "torch": torch.__version__, "cpu": platform.processor() or "cpu",
            "loadavg_1m": round(os.getloadavg()[0], 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--objectives", default=",".join(OBJECTIVES))
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--prep-images", type=int, default=2048)
    p.add_argument("--step-images", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers of the reference pipeline")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0 = torch's default)")
    p.add_argument("--depths", type=lambda s: [int(v) for v in s.split(",")], default=[1, 1, 1])
    p.add_argument("--width", type=int, default=16)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        images, _ = cifar10_images(args.split)
    except FileNotFoundError as e:
        print(json.dumps({"benchmark": "pretext_throughput", "skipped": str(e)}))
        return 0
    ab_gamut()  # built once, outside the timings
    for name in args.objectives.split(","):
        print(json.dumps(bench(name.strip(), images, args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
