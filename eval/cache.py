"""Cached features of a frozen network, keyed by checkpoint and dataset split.

The key is content-addressed: a SHA-1 over the objective's full ``state_dict`` (every parameter
and buffer: the checkpoint), its class, and the exact uint8 images of the split (and, for
augmented views, the view seed). A changed weight or a different split can never hit a stale
entry. Entries are ``<key>.pt`` files holding one float32 tensor (loaded with
``weights_only=True``) plus a ``<key>.json`` with human-readable labels (checkpoint, split).

Extraction goes through :func:`unnas.eval.features.extract_features` (eval mode, no gradients); the
network's weights, buffers and ``training`` flags are exactly as before afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["state_digest", "tensor_digest", "cached_features", "augmented_features"]


def tensor_digest(t: torch.Tensor, h=None):
    """Update (or start) a SHA-1 with a tensor's dtype, shape and bytes."""
    h = h or hashlib.sha1()
    shape = tuple(t.shape)
    t = t.detach().cpu().contiguous().reshape(-1)
    h.update(f"{t.dtype}|{shape}|".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h


def state_digest(module: nn.Module) -> str:
    """SHA-1 of a module's class and full state (parameters and buffers, in key order)."""
    h = hashlib.sha1(type(module).__qualname__.encode())
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        tensor_digest(v, h)
    return h.hexdigest()


def _modes(module: nn.Module) -> list[bool]:
    return [m.training for m in module.modules()]


def _restore(module: nn.Module, modes: list[bool]) -> None:
    for m, t in zip(module.modules(), modes):
        m.training = t


def cached_features(objective: nn.Module, images: torch.Tensor, *, cache_dir: str | Path | None = None,
                    batch_size: int = 256, device: str | torch.device = "cpu", label: dict | None = None,
                    _key_extra: str = "") -> torch.Tensor:
    """Pooled eval features ``(N, D)`` of ``images`` (uint8), read from / written to ``cache_dir``
    (no caching when ``None``). ``label`` is stored next to the entry for humans only."""
    from unnas.eval.features import extract_features

    path = None
    if cache_dir is not None:
        h = hashlib.sha1(state_digest(objective).encode())
        tensor_digest(images, h)
        h.update(_key_extra.encode())
        path = Path(cache_dir) / f"{h.hexdigest()[:24]}.pt"
        if path.is_file():
            try:
                feats = torch.load(path, map_location="cpu", weights_only=True)
                if isinstance(feats, torch.Tensor) and feats.shape[0] == images.shape[0]:
                    return feats
            except Exception:  # noqa: BLE001 - an unreadable entry is recomputed
                pass
    modes = _modes(objective)
    try:
        feats = extract_features(objective, images, batch_size=batch_size, device=device)
    finally:
        _restore(objective, modes)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        torch.save(feats, tmp)
        os.replace(tmp, path)
        path.with_suffix(".json").write_text(json.dumps({**(label or {}), "n": int(feats.shape[0]),
                                                         "dim": int(feats.shape[1])}, sort_keys=True))
    return feats


def augmented_features(objective: nn.Module, images: torch.Tensor, views: int, seed: int, **kwargs
                       ) -> torch.Tensor:
    """Features of ``views`` randomly augmented copies of ``images`` (the objective's ``augment``:
    pad-crop with the mean colour and flip, parameters from ``torch.Generator().manual_seed(seed)``),
    stacked view after view: ``(views * N, D)``. Used as stage-2 training data (the paper re-balances on augmented images)."""
    gen = torch.Generator().manual_seed(int(seed))
    out = []
    for v in range(views):
        aug = objective.augment(images, gen)
        out.append(cached_features(objective, aug, _key_extra=f"augment|{seed}|{v}", **kwargs))
    return torch.cat(out) if out else torch.zeros(0, 0)
