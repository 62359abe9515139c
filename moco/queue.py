"""The queue of negative keys: a FIFO ring buffer of the K most recent (L2-normalized) keys.

The buffer starts empty and only the filled slots are used as negatives (the reference
implementation starts from K random unit vectors, which are not keys of any image). It is
allocated on first use, or when a checkpoint is loaded, so its size can depend on the batch
size; ``keys``, ``ptr`` (next slot to write) and ``count`` (filled slots) are buffers and go
into ``state_dict()``, so a resumed run continues with exactly the same negatives.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn


def distributed_world() -> int:
    """Number of ranks of the default process group (1 when torch.distributed is not in use)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


@torch.no_grad()
def gather_keys(keys: torch.Tensor) -> torch.Tensor:
    """Concatenate ``keys`` of every rank in rank order (no gradient); the identity in one process."""
    world = distributed_world()
    if world == 1:
        return keys
    out = [torch.empty_like(keys) for _ in range(world)]
    dist.all_gather(out, keys.contiguous())
    return torch.cat(out, dim=0)


class KeyQueue(nn.Module):
    """Ring buffer of ``size`` keys of dimension ``dim``; the oldest key is overwritten first."""

    def __init__(self, size: int = 0, dim: int = 0):
        super().__init__()
        self.register_buffer("keys", torch.zeros(size, dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return int(self.keys.shape[0])

    @property
    def allocated(self) -> bool:
        return self.size > 0

    def allocate(self, size: int, dim: int) -> None:
        """(Re)create an empty queue of ``size`` slots, keeping the buffers' device and dtype."""
        if size <= 0 or dim <= 0:
            raise ValueError(f"queue size and key dimension must be positive, got {size} and {dim}")
        self.keys = torch.zeros(size, dim, dtype=self.keys.dtype, device=self.keys.device)
        self.ptr.zero_()
        self.count.zero_()

    def negatives(self) -> torch.Tensor:
        """The filled slots ``(n, dim)``, n <= K (storage order; InfoNCE does not depend on it)."""
        return self.keys[: int(self.count)]

    def ordered(self) -> torch.Tensor:
        """The stored keys from the oldest to the newest."""
        n, k, p = int(self.count), self.size, int(self.ptr)
        if n < k:
            return self.keys[:n]
        return torch.cat([self.keys[p:], self.keys[:p]])

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` (B, dim) after the newest key, wrapping around and overwriting the oldest."""
        if not self.allocated:
            raise RuntimeError("the queue has not been allocated")
        b, k = keys.shape[0], self.size
        if keys.dim() != 2 or keys.shape[1] != self.keys.shape[1]:
            raise ValueError(f"keys must be (B, {self.keys.shape[1]}), got {tuple(keys.shape)}")
        if b > k:
            raise ValueError(f"cannot enqueue {b} keys into a queue of {k}")
        p = int(self.ptr)
        idx = (torch.arange(b, device=self.keys.device) + p) % k
        self.keys.index_copy_(0, idx, keys.detach().to(self.keys.dtype))
        self.ptr.fill_((p + b) % k)
        self.count.fill_(min(int(self.count) + b, k))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        saved = state_dict.get(prefix + "keys")
        if saved is not None and saved.shape != self.keys.shape:  # adopt the checkpoint's size
            self.keys = torch.zeros(saved.shape, dtype=self.keys.dtype, device=self.keys.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
