"""unnas: rank candidate networks without labels, and measure how far the label-free ranking agrees
with the supervised one."""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("unnas")
except _metadata.PackageNotFoundError:  # a source tree that was not installed
    __version__ = "0+unknown"
