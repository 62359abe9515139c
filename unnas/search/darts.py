"""DARTS (Liu et al. 2019) driven by the loss of any objective (rotation, jigsaw, colorization,
MoCo or supervised): search method ``darts``, options section ``darts``.

The architecture parameters (``1e-3 * randn``) are trained with Adam (lr 3e-4, betas (0.5, 0.999),
weight decay 1e-3) on one half of the training images, the weights with SGD under the cosine
schedule and gradient clipping of the ``train`` section on the other half; every step first
updates the architecture on a batch of its half, then the weights on a batch of theirs
(:func:`unnas.search.loop.run_supernet_search`). Spaces: :mod:`unnas.search.darts_spaces`.

First order (default): the architecture gradient is that of the loss at the current weights.
Second order (``darts.second_order=true``): the gradient of the loss after one virtual SGD step
``w' = w - xi * (momentum * buffer + grad L_train(w) + weight_decay * w)`` (``xi`` = the weights'
current learning rate unless ``darts.unrolled_lr`` is set), with DARTS's finite-difference
Hessian-vector product: ``grad_a L_val(w', a) - xi * (grad_a L_train(w+, a) - grad_a L_train(w-, a))
/ (2 eps)``, ``w+- = w +- eps * grad_w' L_val(w', a)``, ``eps = 0.01 / ||grad_w' L_val||``. The
three passes over the weights' batch see the same augmentation; buffers (BN statistics, MoCo's
queue) are restored after the virtual passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unnas.errors import UserError
from unnas.registry import SEARCH_METHODS
from unnas.search.base import ArchOptimizer, ArchStep, SearchMethod, check_arch_optimizer, grads_of
from unnas.search.darts_spaces import SPACES


@dataclass(frozen=True)
class DartsOptions(ArchOptimizer):
    """Options of the ``darts`` search method (config section ``darts``)."""

    second_order: bool = False  # unrolled architecture gradient (DARTS 2nd order)
    unrolled_lr: float = 0.0  # xi of the virtual step; 0 = the weights' current learning rate
    fd_eps: float = 0.01  # finite-difference step, divided by the norm of the validation gradient


def snapshot_buffers(module: nn.Module) -> list[tuple[nn.Module, str, torch.Tensor | None]]:
    return [(m, k, None if b is None else b.clone()) for m in module.modules() for k, b in m._buffers.items()]


def restore_buffers(saved: list[tuple[nn.Module, str, torch.Tensor | None]]) -> None:
    for m, k, b in saved:
        m._buffers[k] = b


def second_order(step: ArchStep, xi: float, fd_eps: float) -> tuple[dict, list[torch.Tensor]]:
    saved = snapshot_buffers(step.objective)
    sub = int(torch.randint(0, 2 ** 62, (1,), generator=step.generator))

    def fork() -> torch.Generator:  # the same augmentation for every pass over the weights' batch
        return torch.Generator().manual_seed(sub)

    try:
        w = step.weight_params
        g_train = grads_of(step.weight_forward(None, fork())["loss"], w)
        group = step.optimizer.param_groups[0]
        mom, wd = group.get("momentum", 0.0), group.get("weight_decay", 0.0)
        with torch.no_grad():
            moved = []
            for p, g in zip(w, g_train):
                d = g + wd * p
                buf = step.optimizer.state.get(p, {}).get("momentum_buffer")
                if buf is not None and mom:
                    d = d + mom * buf
                moved.append((p - xi * d).detach().requires_grad_(True))
        out = step.arch_forward(dict(zip(step.weight_names, moved)), step.generator)
        loss = step.arch_loss(out)
        both = grads_of(loss, step.arch_params + moved)
        d_arch, d_w = both[:len(step.arch_params)], both[len(step.arch_params):]
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in d_w))
        if not norm > 0:
            return {**out, "search_loss": loss}, d_arch
        eps = fd_eps / float(norm)
        hv = []
        for sign in (1.0, -1.0):
            shifted = {n: (p + sign * eps * g).detach() for n, p, g in zip(step.weight_names, w, d_w)}
            hv.append(grads_of(step.weight_forward(shifted, fork())["loss"], step.arch_params))
        grads = [da - xi * (hp - hm) / (2 * eps) for da, hp, hm in zip(d_arch, *hv)]
        return {**out, "search_loss": loss}, grads
    finally:
        restore_buffers(saved)


@SEARCH_METHODS.register("darts", config=DartsOptions)
class Darts(SearchMethod):
    name = "darts"
    spaces = SPACES

    def __init__(self, options: DartsOptions | None = None):
        super().__init__(options if options is not None else DartsOptions())

    def check(self) -> None:
        check_arch_optimizer(self.name, self.options)
        if self.options.unrolled_lr < 0:
            raise UserError("darts.unrolled_lr", self.options.unrolled_lr, "a number >= 0 (0 = the weights' lr)")
        if not self.options.fd_eps > 0:
            raise UserError("darts.fd_eps", self.options.fd_eps, "a positive number")

    def arch_gradients(self, step: ArchStep) -> tuple[dict, list[torch.Tensor]]:
        if not self.options.second_order:
            return super().arch_gradients(step)
        xi = self.options.unrolled_lr or step.optimizer.param_groups[0]["lr"]
        return second_order(step, xi, self.options.fd_eps)
