"""Dataset loaders: digits (embedded), mnist / fashion-mnist (idx files), cifar10 / cifar100
(torchvision's format), imagefolder (any class-per-folder tree, cached), fake (seeded)."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from unnas.data.core import RawData
from unnas.errors import UserError
from unnas.registry import DATASETS

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def cache_dir() -> Path:
    """Where decoded datasets are cached (``$UNNAS_CACHE`` or ``~/.cache/unnas``)."""
    return Path(os.environ.get("UNNAS_CACHE") or Path.home() / ".cache" / "unnas")


def _resize(x: np.ndarray, size: int) -> np.ndarray:
    if size <= 0:
        raise UserError("data.image_size", size, "a positive integer")
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    t = torch.from_numpy(x).float()
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return t.round().clamp_(0, 255).to(torch.uint8).numpy()


@DATASETS.register("digits")
def load_digits(cfg) -> RawData:
    """scikit-learn's 1,797 handwritten 8x8 digits, scaled to uint8 and resized to ``image_size``."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    return RawData(_resize(x, cfg.image_size), d.target.astype(np.int64),
                   class_names=[str(i) for i in range(10)])


@DATASETS.register("fake")
def load_fake(cfg, n_train: int = 640, n_test: int = 160, num_classes: int = 10, channels: int = 3) -> RawData:
    """Seeded synthetic images: a per-class random template plus noise (learnable, for tests)."""
    rng = np.random.default_rng(cfg.seed + 12345)
    size = cfg.image_size
    templates = rng.uniform(0, 255, size=(num_classes, channels, size, size))

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.arange(n) % num_classes
        x = templates[y] * 0.6 + rng.uniform(0, 255, size=(n, channels, size, size)) * 0.4
        return np.clip(np.round(x), 0, 255).astype(np.uint8), y.astype(np.int64)

    trx, tr_y = make(n_train)
    tex, te_y = make(n_test)
    return RawData(trx, tr_y, tex, te_y, [f"class{i}" for i in range(num_classes)])


# ---------------------------------------------------------------- idx (MNIST-style) files
def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzip-compressed) into a numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise UserError("data.root", str(path), "a readable idx file", message=f"cannot read ({e})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise UserError("data.root", str(path), "an idx file (magic 0x0000)", message="not an idx file")
    dtype_code, ndim = data[2], data[3]
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if dtype_code not in dtypes:
        raise UserError("data.root", str(path), "an idx file", message=f"unknown idx type 0x{dtype_code:02x}")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=dtypes[dtype_code], offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise UserError("data.root", str(path), "a complete idx file", message="truncated idx file")
    return arr.reshape(shape)


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        if (root / name).is_file():
            return root / name
    raise UserError("data.root", str(root), f"a folder holding {stem}[.gz]", message="missing data file")


def _load_idx_folder(root: Path, what: str, hint: str = "") -> RawData:
    if not root.is_dir():
        raise UserError("data.root", str(root), f"a folder with the {what} idx files{hint}", message="folder not found")
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(_find(root, f"{prefix}-images-idx3-ubyte"))
        y = read_idx(_find(root, f"{prefix}-labels-idx1-ubyte"))
        if x.shape[0] != y.shape[0]:
            raise UserError("data.root", str(root), None, message=f"{split} images and labels differ in count")
        arrays[split] = (np.ascontiguousarray(x[:, None]).astype(np.uint8), y.astype(np.int64))
    return RawData(*arrays["train"], *arrays["test"])


@DATASETS.register("mnist")
def load_mnist(cfg) -> RawData:
    root = Path(cfg.root) if cfg.root else cache_dir() / "mnist"
    return _load_idx_folder(root, "MNIST")


FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


@DATASETS.register("fashion-mnist")
def load_fashion_mnist(cfg) -> RawData:
    root = Path(cfg.root) if cfg.root else Path("/usr/share/datasets/fashion-mnist")
    raw = _load_idx_folder(root, "Fashion-MNIST", " (apt-get install dataset-fashion-mnist)")
    raw.class_names = FASHION_CLASSES
    return raw


# ---------------------------------------------------------------- torchvision CIFAR
def _load_cifar(cfg, cls_name: str) -> RawData:
    import torchvision

    root = Path(cfg.root) if cfg.root else cache_dir() / "torchvision"
    cls = getattr(torchvision.datasets, cls_name)
    try:
        tr = cls(str(root), train=True, download=cfg.download)
        te = cls(str(root), train=False, download=cfg.download)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        raise UserError("data.root", str(root), f"a folder with {cls_name} in torchvision's format "
                        "(or data.download=true)", message=str(e).splitlines()[0]) from None
    x = lambda d: np.ascontiguousarray(np.asarray(d.data).transpose(0, 3, 1, 2))  # noqa: E731
    return RawData(x(tr), np.asarray(tr.targets, np.int64), x(te), np.asarray(te.targets, np.int64), list(tr.classes))


@DATASETS.register("cifar10")
def load_cifar10(cfg) -> RawData:
    return _load_cifar(cfg, "CIFAR10")


@DATASETS.register("cifar100")
def load_cifar100(cfg) -> RawData:
    return _load_cifar(cfg, "CIFAR100")


# ---------------------------------------------------------------- ImageFolder trees
def _scan_classes(folder: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = sorted(d.name for d in folder.iterdir() if d.is_dir())
    if not classes:
        raise UserError("data.root", str(folder), "a folder with one sub-folder per class", message="no class folders")
    items = []
    for ci, c in enumerate(classes):
        files = sorted(p for p in (folder / c).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        items += [(p, ci) for p in files]
    return classes, items


def _decode(path: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise UserError("data.root", str(path), "a readable image", message=f"corrupt image ({e.__class__.__name__})") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def _decode_all(items: list[tuple[Path, int]], mode: str, size: tuple[int, int] | None,
                fallback: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as ex:
        arrays = list(ex.map(lambda it: _decode(it[0], mode, size), items))
        if len({a.shape for a in arrays}) != 1 and size is None and fallback is not None:
            arrays = list(ex.map(lambda it: _decode(it[0], mode, fallback), items))
    if len({a.shape for a in arrays}) != 1:
        raise UserError("data.root", str(items[0][0].parent.parent), "images of one size",
                        message="images differ in size")
    x = np.stack(arrays).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x), np.asarray([c for _, c in items], np.int64)


def _tree_key(items: list[tuple[Path, int]], mode: str, size) -> str:
    h = hashlib.sha1(f"{mode}|{size}".encode())
    for p, c in items:
        st = p.stat()
        h.update(f"{p}|{c}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_image_tree(folder: Path, mode: str = "RGB", size: tuple[int, int] | None = None,
                    use_cache: bool = True, fallback: tuple[int, int] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode a class-per-folder tree once; cache it as uint8 keyed by paths, sizes and mtimes.

    ``size`` resizes every image; ``fallback`` resizes only when the images differ in size."""
    classes, items = _scan_classes(folder)
    if not items:
        raise UserError("data.root", str(folder), f"images ({', '.join(IMAGE_EXTENSIONS)})", message="no images found")
    cache = cache_dir() / "imagefolder" / f"{_tree_key(items, mode, (size, fallback))}.npz"
    if use_cache and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return z["x"], z["y"], classes
    x, y = _decode_all(items, mode, size, fallback)
    if use_cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, x=x, y=y)
        os.replace(tmp, cache)
    return x, y, classes


@DATASETS.register("imagefolder")
def load_imagefolder(cfg) -> RawData:
    """``root/<class>/*.jpg``, or ``root/train/<class>`` + ``root/test/<class>`` (then used as splits).
    Images are converted to RGB (grayscale trees stay 1-channel); when they differ in size they
    are all resized to ``data.image_size``."""
    if not cfg.root:
        raise UserError("data.root", cfg.root, "the folder of an image tree", message="no folder given")
    root = Path(cfg.root)
    if not root.is_dir():
        raise UserError("data.root", str(root), "an existing folder", message="folder not found")
    train_dir, test_dir = root / "train", root / "test"
    split = train_dir.is_dir() and test_dir.is_dir()
    probe = _scan_classes(train_dir if split else root)[1]
    if not probe:
        raise UserError("data.root", str(root), "image files", message="no images found")
    from PIL import Image

    try:
        with Image.open(probe[0][0]) as im:
            mode = "L" if im.mode in ("L", "1", "I;16") else "RGB"
    except OSError:
        mode = "RGB"
    fallback = (cfg.image_size, cfg.image_size)
    x, y, classes = load_image_tree(train_dir if split else root, mode, None, fallback=fallback)
    if split:
        tx, ty, tclasses = load_image_tree(test_dir, mode, (x.shape[2], x.shape[3]))
        if tclasses != classes:
            raise UserError("data.root", str(test_dir), ", ".join(classes), message="test classes differ from train classes")
        return RawData(x, y, tx, ty, classes)
    return RawData(x, y, class_names=classes)
