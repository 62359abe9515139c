"""Datasets as uint8 tensors ``(N, C, H, W)`` with int64 labels, split into train/val/test."""

from unnas.data.core import Data, Split, load_dataset, longtail_counts, stratified_split

__all__ = ["Data", "Split", "load_dataset", "longtail_counts", "stratified_split"]
