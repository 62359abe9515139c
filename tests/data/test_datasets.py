import gzip
import struct

import numpy as np
import pytest
import torch

from unnas.config import DataConfig
from unnas.data import load_dataset, longtail_counts, stratified_split
from unnas.data.datasets import read_idx
from unnas.errors import UserError


def test_digits_default_dataset():
    d = load_dataset(DataConfig())
    assert d.train.images.dtype == torch.uint8 and d.train.labels.dtype == torch.int64
    assert d.channels == 1 and d.image_size == (16, 16) and d.num_classes == 10
    assert len(d.train) + len(d.val) + len(d.test) == 1797
    assert int(d.train.images.max()) == 255  # 16 -> 255
    # splits are disjoint: no identical (image, label) shared between train and test
    tr = {(bytes(x.numpy()), int(y)) for x, y in zip(d.train.images, d.train.labels)}
    overlap = sum((bytes(x.numpy()), int(y)) in tr for x, y in zip(d.test.images, d.test.labels))
    assert overlap <= 2  # sklearn digits has a couple of exact duplicates, nothing more


def test_digits_resize_and_subset():
    d = load_dataset(DataConfig(image_size=8, subset_per_class=5))
    assert d.image_size == (8, 8)
    assert d.train.class_counts(10) == [5] * 10


def test_test_subset_is_a_seeded_uniform_subset_of_the_test_split():
    full = load_dataset(DataConfig(image_size=8))
    sub = load_dataset(DataConfig(image_size=8, test_subset=50))
    again = load_dataset(DataConfig(image_size=8, test_subset=50))
    assert len(sub.test) == 50 and torch.equal(sub.test.images, again.test.images)
    rows = {bytes(x.numpy()) for x in full.test.images}
    assert all(bytes(x.numpy()) in rows for x in sub.test.images)  # a subset of the same test split
    assert torch.equal(sub.train.images, full.train.images)  # training data unchanged
    assert len(load_dataset(DataConfig(image_size=8, test_subset=10 ** 6)).test) == len(full.test)
    with pytest.raises(UserError, match="data.test_subset"):
        load_dataset(DataConfig(image_size=8, test_subset=-1))


def _write_idx(path, arr: np.ndarray, code: int):
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.tobytes())


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_loader_on_generated_files(tmp_path, name):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", x, 0x08)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", y, 0x08)
    d = load_dataset(DataConfig(name=name, root=str(tmp_path), val_fraction=0.25))
    assert d.channels == 1 and d.image_size == (28, 28)
    assert len(d.train) == 30 and len(d.val) == 10 and len(d.test) == 20
    expect = read_idx(tmp_path / "t10k-images-idx3-ubyte.gz")
    assert torch.equal(d.test.images[:, 0], torch.from_numpy(expect.copy()))


def test_idx_errors(tmp_path):
    with pytest.raises(UserError, match="folder not found"):
        load_dataset(DataConfig(name="mnist", root=str(tmp_path / "missing")))
    with pytest.raises(UserError, match="missing data file"):
        load_dataset(DataConfig(name="mnist", root=str(tmp_path)))
    bad = tmp_path / "x.gz"
    with gzip.open(bad, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 3)
    with pytest.raises(UserError, match="truncated"):
        read_idx(bad)


def _tree(root, n_per_class=4, size=8, mode="RGB"):
    from PIL import Image

    rng = np.random.default_rng(1)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):
            shape = (size, size, 3) if mode == "RGB" else (size, size)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")


def test_imagefolder_decodes_and_caches(tmp_path, tmp_cache):
    _tree(tmp_path / "tree", 5)
    cfg = DataConfig(name="imagefolder", root=str(tmp_path / "tree"), test_fraction=0.2, val_fraction=0.0)
    d = load_dataset(cfg)
    assert d.channels == 3 and d.num_classes == 2 and d.class_names == ["cat", "dog"]
    assert len(d.train) + len(d.test) == 10
    assert len(list((tmp_cache / "imagefolder").glob("*.npz"))) == 1
    d2 = load_dataset(cfg)  # from the cache
    assert torch.equal(d.train.images, d2.train.images)


def test_imagefolder_train_test_split_folders(tmp_path, tmp_cache):
    _tree(tmp_path / "t" / "train", 3)
    _tree(tmp_path / "t" / "test", 2)
    d = load_dataset(DataConfig(name="imagefolder", root=str(tmp_path / "t"), val_fraction=0.0))
    assert len(d.train) == 6 and len(d.test) == 4


def test_imagefolder_corrupt_image_names_the_file(tmp_path, tmp_cache):
    _tree(tmp_path / "tree", 2)
    bad = tmp_path / "tree" / "dog" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(UserError) as e:
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path / "tree")))
    assert "broken.png" in str(e.value) and "corrupt image" in str(e.value)


def test_imagefolder_missing_folder(tmp_path):
    with pytest.raises(UserError, match="folder not found"):
        load_dataset(DataConfig(name="imagefolder", root=str(tmp_path / "nope")))


def test_cifar_refuses_files_that_are_not_the_official_ones(tmp_path):
    # torchvision's CIFAR format is checked against the official md5 sums before unpickling
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"]:
        (folder / name).write_bytes(b"not the official file")
    with pytest.raises(UserError, match="data.root"):
        load_dataset(DataConfig(name="cifar10", root=str(tmp_path)))


def test_fake_is_seeded():
    a = load_dataset(DataConfig(name="fake", image_size=8))
    b = load_dataset(DataConfig(name="fake", image_size=8))
    assert torch.equal(a.train.images, b.train.images) and a.channels == 3


def test_longtail_counts_cifar10_rho100():
    assert longtail_counts(5000, 10, 100) == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert longtail_counts(5000, 10, 1) == [5000] * 10
    with pytest.raises(UserError):
        longtail_counts(10, 10, 0.5)


def test_longtail_variant_of_a_dataset():
    d = load_dataset(DataConfig(name="fake-lt", image_size=8, imbalance=10, val_fraction=0.0))
    counts = d.train.class_counts(10)
    assert counts == longtail_counts(64, 10, 10)
    assert d.test.class_counts(10) == [16] * 10  # the test set stays balanced


def test_stratified_split_is_per_class():
    y = np.repeat(np.arange(3), [10, 20, 30])
    keep, held = stratified_split(y, 0.1, seed=0)
    assert np.bincount(y[held]).tolist() == [1, 2, 3]
    assert len(np.intersect1d(keep, held)) == 0 and len(keep) + len(held) == 60


def test_unknown_dataset():
    with pytest.raises(UserError) as e:
        load_dataset(DataConfig(name="imagenet-9000"))
    assert "digits" in str(e.value)
