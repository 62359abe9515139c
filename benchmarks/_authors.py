"""The authors' public code as callables for ``benchmarks/proxies.py --speed`` (filled below)."""

from __future__ import annotations


def load_authors(root: str, options: dict) -> tuple[dict, dict]:
    """``({proxy: callable(ProxyInput) -> value}, {proxy: why it has none})``."""
    return {}, {}
