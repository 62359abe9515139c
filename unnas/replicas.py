"""How the processes of one training run share the work: the hook of :func:`unnas.engine.train`.

The engine trains through a :class:`Replicas` object. The default is one process: the objective
itself runs the forward pass, it trains on the whole epoch order, augmentations come from the
engine's one generator and nothing is combined. A data-parallel run
(:class:`unnas.distributed.DataParallel`) overrides the methods below, so both paths share the
engine's one training loop and every fix to it.

Per step of a global batch of ``B`` samples, each of the ``world`` processes trains on
``B / world`` of them; the learning-rate schedule, the epoch order (drawn from the engine's
generator, the same in every process) and the checkpoints are those of the global run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Replicas:
    """One process (``rank`` 0 of a ``world`` of 1); subclass for data-parallel training."""

    rank: int = 0
    world: int = 1

    def check(self, batch_size: int, num_samples: int) -> None:
        """Raise :class:`~unnas.errors.UserError` if the run cannot be split this way."""

    def wrap(self, objective: nn.Module, device: torch.device) -> nn.Module:
        """The module the forward pass goes through (after the objective is on ``device``); it may
        replace layers of ``objective`` in place (before the optimizer sees its parameters)."""
        return objective

    def shard(self, order: torch.Tensor, batch_size: int) -> torch.Tensor:
        """This process's indices in step order, ``batch_size // world`` per step."""
        return order

    def augmentation_generator(self, generator: torch.Generator, seed: int) -> torch.Generator:
        """The generator this process draws its augmentations from (one process: the engine's)."""
        return generator

    def any(self, flag: bool | torch.Tensor) -> bool:
        """True when ``flag`` holds in some process (a diverged loss, a time limit: all processes
        stop at the same step)."""
        return bool(flag)

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """Element-wise sum over the processes."""
        return values

    def gather(self, obj: Any) -> list:
        """``obj`` of every process, in rank order."""
        return [obj]

    def barrier(self) -> None:
        """Wait until every process gets here."""

    def finish(self, objective: nn.Module) -> None:
        """Training is over: from here on (precise BN, evaluation) each process works on its own
        and issues no collective call."""
