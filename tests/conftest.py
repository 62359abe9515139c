"""Shared fixtures. Real data from ../shared/data is used when present; tests that need it skip
cleanly otherwise."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("UNNAS_SHARED_DATA", ROOT.parent / "shared" / "data"))
CIFAR_TAR = SHARED_DATA / "cifar10-jpeg.tar.gz"


def cifar10_tree() -> Path | None:
    """The shared CIFAR-10 ImageFolder tree, extracted once into the cache (None if absent)."""
    from unnas.data.datasets import cache_dir

    if not CIFAR_TAR.is_file():
        return None
    dest = cache_dir() / "cifar10-jpeg"
    done = dest / ".extracted"
    if not done.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "xzf", str(CIFAR_TAR), "-C", str(dest)], check=True)
        done.write_text(hashlib.sha1(str(CIFAR_TAR.stat().st_mtime_ns).encode()).hexdigest())
    return dest / "cifar10"


@pytest.fixture(scope="session")
def cifar10_root() -> Path:
    root = cifar10_tree()
    if root is None:
        pytest.skip(f"shared CIFAR-10 not found at {CIFAR_TAR}")
    return root


@pytest.fixture(autouse=True, scope="session")
def _one_intra_op_thread():
    """Tests run many tiny tensor ops, for which one thread is fastest and fully deterministic."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch) -> Path:
    """A private dataset cache for tests that decode image trees."""
    monkeypatch.setenv("UNNAS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def load_benchmark():
    """``name -> module``: the script ``benchmarks/NAME.py`` imported by path, with ``benchmarks/`` on
    ``sys.path`` for the helpers it imports."""

    def load(name: str):
        if str(ROOT / "benchmarks") not in sys.path:
            sys.path.insert(0, str(ROOT / "benchmarks"))
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return load
