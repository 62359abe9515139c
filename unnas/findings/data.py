"""The data each budget uses: ``tiny`` (the seeded ``fake`` images, a few dozen, for the test
suite), ``digits`` (the embedded default), ``cifar10`` (the ImageFolder tree given by
``--data-root``, 500 training images per class and 2,000 test images; ``cifar10-2k``: 200 per class,
for the findings that train every network with five objectives)."""

from __future__ import annotations

from pathlib import Path

from unnas.errors import UserError

DEFAULT_CIFAR = Path("~/.cache/unnas/cifar10-jpeg/cifar10").expanduser()
SETS = {
    "tiny": ["--data", "fake", "data.subset_per_class=4", "data.test_subset=40", "--batch-size", "16"],
    "digits": ["--data", "digits"],
    "cifar10": ["--data", "imagefolder", "data.subset_per_class=500", "data.test_subset=2000", "data.image_size=32"],
    "cifar10-2k": ["--data", "imagefolder", "data.subset_per_class=200", "data.test_subset=2000", "data.image_size=32"],
    "cifar10-small": ["--data", "imagefolder", "data.subset_per_class=50", "data.test_subset=500"],
    "tiny-video": ["--data", "moving-digits", "data.subset_per_class=3", "data.test_subset=30", "--batch-size", "8"],
    "video": ["--data", "moving-digits"],
}


def data_args(ctx, name: str) -> list[str]:
    """Command-line options selecting data set ``name``."""
    args = list(SETS[name])
    if name.startswith("cifar10"):
        root = Path(ctx.data_root or DEFAULT_CIFAR)
        if not (root / "train").is_dir():
            raise UserError("--data-root", str(root), "the CIFAR-10 ImageFolder tree (train/ and test/ folders)",
                            message="this finding's full budget trains on CIFAR-10")
        args += ["--data-root", str(root)]
    return args
