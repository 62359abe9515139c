"""Dataset container, splitting, subsetting and long-tail subsampling.

Loaders registered in :data:`unnas.registry.DATASETS` return raw arrays; :func:`load_dataset`
turns them into a :class:`Data` with train / val / test splits, following a
:class:`~unnas.config.DataConfig`. A name ending in ``-lt`` is the long-tailed variant of the
base dataset (exponential profile, imbalance ratio ``rho``; Cao et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from unnas.errors import UserError
from unnas.registry import DATASETS


@dataclass
class Split:
    images: torch.Tensor  # uint8 (N, C, H, W) images or (N, T, C, H, W) clips
    labels: torch.Tensor  # int64 (N,)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, idx: np.ndarray | torch.Tensor) -> "Split":
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return Split(self.images[idx], self.labels[idx])

    def class_counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.labels, minlength=num_classes).tolist()


@dataclass
class RawData:
    """What a loader returns: train and (optionally) test arrays."""

    train_images: np.ndarray  # uint8 (N, C, H, W) images or (N, T, C, H, W) clips
    train_labels: np.ndarray
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    class_names: list[str] = field(default_factory=list)


@dataclass
class Data:
    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    class_names: list[str]
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale, from the training split
    std: tuple[float, ...]

    @property
    def channels(self) -> int:
        return int(self.train.images.shape[-3])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train.images.shape[-2]), int(self.train.images.shape[-1])

    @property
    def frames(self) -> int:
        """Frames per clip of video data ``(N, T, C, H, W)``; 0 for images."""
        return int(self.train.images.shape[1]) if self.train.images.dim() == 5 else 0

    def summary(self) -> dict:
        return {"name": self.name, "num_classes": self.num_classes, "channels": self.channels,
                **({"frames": self.frames} if self.frames else {}),
                "image_size": list(self.image_size), "train": len(self.train), "val": len(self.val),
                "test": len(self.test), "train_class_counts": self.train.class_counts(self.num_classes)}


def longtail_counts(n_max: int, num_classes: int, rho: float) -> list[int]:
    """Images kept per class: ``n_i = int(n_max * (1/rho) ** (i / (C - 1)))`` (Cao et al. 2019),
    at least one image per class (only matters for tiny datasets)."""
    if rho < 1:
        raise UserError("data.imbalance", rho, "a ratio >= 1", message="imbalance ratio below 1")
    if num_classes == 1:
        return [n_max]
    return [max(1, int(n_max * (1.0 / rho) ** (i / (num_classes - 1)))) for i in range(num_classes)]


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): ``round(fraction * n_c)`` of each class held out, at least one
    per class when ``fraction > 0`` and the class has two or more images."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(fraction * len(idx)))
        if fraction > 0 and k == 0 and len(idx) >= 2:
            k = 1
        held.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def _apply_longtail(labels: np.ndarray, num_classes: int, rho: float) -> np.ndarray:
    counts = np.bincount(labels, minlength=num_classes)
    target = longtail_counts(int(counts.max()), num_classes, rho)
    idx = []
    for c in range(num_classes):
        where = np.flatnonzero(labels == c)  # first n_c images of the class, in dataset order
        idx.append(where[: min(target[c], len(where))])
    return np.sort(np.concatenate(idx))


def _check_raw(raw: RawData, name: str) -> None:
    for what, arr in (("train images", raw.train_images), ("test images", raw.test_images)):
        if arr is None:
            continue
        if arr.dtype != np.uint8 or arr.ndim not in (4, 5):
            raise TypeError(f"dataset {name}: {what} must be uint8 (N, C, H, W) or (N, T, C, H, W), "
                            f"got {arr.dtype} {arr.shape}")


def clip_statistics(x: np.ndarray, chunk: int = 256) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (sample) standard deviation on the [0, 1] scale of uint8 clips
    ``(N, T, C, H, W)``, summed in float64 over chunks of clips (a video set does not fit in
    memory as floats)."""
    c = x.shape[2]
    s1, s2, n = np.zeros(c), np.zeros(c), 0
    for i in range(0, x.shape[0], chunk):
        part = x[i:i + chunk].astype(np.float64) / 255.0
        s1 += part.sum(axis=(0, 1, 3, 4))
        s2 += np.square(part).sum(axis=(0, 1, 3, 4))
        n += part.size // c
    mean = s1 / n
    var = np.maximum(s2 - n * mean ** 2, 0.0) / max(n - 1, 1)
    return tuple(float(v) for v in mean), tuple(max(float(v), 1e-3) for v in np.sqrt(var))


def load_dataset(cfg) -> Data:
    """Materialize the dataset described by a :class:`~unnas.config.DataConfig`."""
    name = cfg.name
    rho = float(cfg.imbalance)
    base = name[:-3] if name.endswith("-lt") and name not in DATASETS else name
    if base != name and rho == 1.0:
        rho = 100.0
    loader = DATASETS.get(base) if base in DATASETS else DATASETS.get(name)
    if not 0 <= cfg.val_fraction < 1:
        raise UserError("data.val_fraction", cfg.val_fraction, "a fraction in [0, 1)")
    raw: RawData = loader(cfg)
    _check_raw(raw, name)
    tr_x, tr_y = raw.train_images, raw.train_labels.astype(np.int64)
    num_classes = int(max(tr_y.max(), -1 if raw.test_labels is None else raw.test_labels.max()) + 1)
    if raw.test_images is None:
        if not 0 < cfg.test_fraction < 1:
            raise UserError("data.test_fraction", cfg.test_fraction, "a fraction in (0, 1)")
        keep, test = stratified_split(tr_y, cfg.test_fraction, cfg.seed + 1)
        te_x, te_y = tr_x[test], tr_y[test]
        tr_x, tr_y = tr_x[keep], tr_y[keep]
    else:
        te_x, te_y = raw.test_images, raw.test_labels.astype(np.int64)
    if cfg.test_subset:
        if cfg.test_subset < 0:
            raise UserError("data.test_subset", cfg.test_subset, "a positive number of images (0 = the whole test split)")
        if cfg.test_subset < len(te_y):  # uniform (not stratified: no label chooses it), in dataset order
            idx = np.sort(np.random.default_rng(cfg.seed + 3).permutation(len(te_y))[: cfg.test_subset])
            te_x, te_y = te_x[idx], te_y[idx]
    # validation split first (from the balanced train set), then long-tail the rest
    keep, val = stratified_split(tr_y, cfg.val_fraction, cfg.seed)
    va_x, va_y = tr_x[val], tr_y[val]
    tr_x, tr_y = tr_x[keep], tr_y[keep]
    if rho != 1.0:
        idx = _apply_longtail(tr_y, num_classes, rho)
        tr_x, tr_y = tr_x[idx], tr_y[idx]
    if cfg.subset_per_class and cfg.subset_per_class > 0:
        rng = np.random.default_rng(cfg.seed + 2)
        idx = []
        for c in range(num_classes):
            where = np.flatnonzero(tr_y == c)
            idx.append(np.sort(rng.permutation(where)[: cfg.subset_per_class]))
        idx = np.sort(np.concatenate(idx))
        tr_x, tr_y = tr_x[idx], tr_y[idx]
    if len(tr_y) == 0:
        raise UserError("data", name, None, message="the training split is empty")
    if tr_x.ndim == 4:
        xf = torch.from_numpy(tr_x).float().div_(255)
        mean = tuple(float(v) for v in xf.mean(dim=(0, 2, 3)))
        std = tuple(max(float(v), 1e-3) for v in xf.std(dim=(0, 2, 3)))
    else:
        mean, std = clip_statistics(tr_x)
    names = raw.class_names or [str(i) for i in range(num_classes)]
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return Data(name=name, train=Split(t(tr_x), t(tr_y)), val=Split(t(va_x), t(va_y)),
                test=Split(t(te_x), t(te_y)), num_classes=num_classes, class_names=list(names),
                mean=mean, std=std)
