"""Shared CIFAR-10 for benchmarks: the ImageFolder tree of ``../shared/data/cifar10-jpeg.tar.gz``
(beside the project), extracted once into ``${UNNAS_CACHE:-~/.cache/unnas}/cifar10-jpeg`` and
decoded once by :func:`unnas.data.datasets.load_image_tree` (cached as uint8).

    from _cifar import cifar10_images          # run from benchmarks/ or with it on sys.path
    x, y = cifar10_images("test")              # uint8 (10000, 3, 32, 32), int64 (10000,)
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np

ARCHIVE = Path(os.environ.get("UNNAS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")) \
    / "cifar10-jpeg.tar.gz"


def cifar10_tree() -> Path | None:
    """The extracted tree (``.../cifar10`` with ``train/`` and ``test/``), or None without the archive."""
    from unnas.data.datasets import cache_dir

    dest = cache_dir() / "cifar10-jpeg"
    tree = dest / "cifar10"
    if (tree / "train").is_dir() and (tree / "test").is_dir() and (dest / ".extracted").is_file():
        return tree
    if not ARCHIVE.is_file():
        return None
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "xzf", str(ARCHIVE), "-C", str(dest)], check=True)
    (dest / ".extracted").write_text(str(ARCHIVE))
    return tree


SHARED = "cifar10-shared"  # the --data value of the benchmarks that means the tree above


def data_options(data: str) -> list[str] | None:
    """The ``unnas.rank`` / ``unnas.search`` options selecting ``data``: :data:`SHARED` is the
    ImageFolder tree of ``../shared/data`` (None without the archive), any other name is passed on."""
    if data != SHARED:
        return ["--data", data]
    tree = cifar10_tree()
    return None if tree is None else ["--data", "imagefolder", "--data-root", str(tree)]


def cifar10_images(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """uint8 ``(N, 3, 32, 32)`` images and int64 labels of one split (``train`` or ``test``)."""
    from unnas.data.datasets import load_image_tree

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    tree = cifar10_tree()
    if tree is None:
        raise FileNotFoundError(f"CIFAR-10 archive not found at {ARCHIVE}")
    x, y, _ = load_image_tree(tree / split)
    return x, y
