"""Epoch samplers for long-tailed training (Kang et al. 2020, arXiv 1910.09217, Sec. 3.1).

A sampler is a callable ``sampler(labels, epoch, generator) -> indices``: ``labels`` is the int64
label vector of the training split, ``epoch`` counts from 0 and ``generator`` is the explicit
``torch.Generator`` all randomness comes from. It returns an int64 index tensor for one epoch of
``len(labels)`` draws. The engine (``unnas.engine.train(..., sampler=...)``) and the stage-2
classifier trainers in :mod:`unnas.eval.linear` / :mod:`unnas.eval.decoupled` both accept one.

The samplers draw class ``j`` with probability ``p_j = n_j^q / sum_k n_k^q`` (``n_j`` training
images of class ``j``), then an image of that class uniformly:

* :func:`instance_balanced` (``q = 1``): every image once per epoch, in random order
  (a permutation, i.e. sampling without replacement, the usual epoch);
* :func:`class_balanced` (``q = 0``): every class equally often (with replacement);
* :func:`square_root` (``q = 1/2``);
* :func:`progressively_balanced(total_epochs)`: ``p_j = (1 - lam) p_j^IB + lam p_j^CB`` with
  ``lam = t / (T - 1)`` at epoch ``t = 0 .. T - 1`` of ``T = total_epochs`` (the authors' schedule,
  ``linspace(0, 1, T)``): class frequencies in the first epoch, class-balanced in the last. A
  sampler for a run of ``T`` epochs must be built with that run's own ``T``.

Classes without images are never drawn.
"""

from __future__ import annotations

from typing import Callable

import torch

from unnas.errors import UserError

Sampler = Callable[[torch.Tensor, int, "torch.Generator | None"], torch.Tensor]

__all__ = ["Sampler", "class_probabilities", "sample_classes", "instance_balanced", "class_balanced",
           "square_root", "progressively_balanced", "power_sampler", "get_sampler", "SAMPLER_NAMES"]

SAMPLER_NAMES = ("instance", "class", "sqrt", "progressive")


def _check_labels(labels: torch.Tensor) -> torch.Tensor:
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or labels.numel() == 0:
        raise ValueError(f"labels must be a non-empty 1-D tensor, got shape {tuple(labels.shape)}")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if int(labels.min()) < 0:
        raise ValueError("labels must be non-negative")
    return labels.long().cpu()


def class_probabilities(counts: torch.Tensor, q: float) -> torch.Tensor:
    """``p_j = n_j^q / sum_k n_k^q`` over classes with ``n_j > 0`` (0 for empty classes)."""
    counts = torch.as_tensor(counts, dtype=torch.float64)
    present = counts > 0
    w = torch.where(present, counts.clamp_min(1).pow(q), torch.zeros_like(counts))
    return w / w.sum()


def sample_classes(labels: torch.Tensor, probs: torch.Tensor, n: int,
                   generator: torch.Generator | None) -> torch.Tensor:
    """``n`` indices: a class drawn from ``probs`` (with replacement), then one of its images
    uniformly (with replacement)."""
    labels = _check_labels(labels)
    order = torch.argsort(labels, stable=True)  # indices grouped by class
    counts = torch.bincount(labels, minlength=probs.numel())
    starts = torch.cumsum(counts, 0) - counts
    cls = torch.multinomial(probs.float(), n, replacement=True, generator=generator)
    offs = (torch.rand(n, generator=generator, dtype=torch.float64) * counts[cls]).long()
    offs = torch.minimum(offs, counts[cls] - 1)  # guard the u -> 1 edge
    return order[starts[cls] + offs]


def power_sampler(q: float, name: str | None = None) -> Sampler:
    """The sampler drawing class ``j`` with probability proportional to ``n_j^q``."""

    def sampler(labels: torch.Tensor, epoch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        labels = _check_labels(labels)
        probs = class_probabilities(torch.bincount(labels), q)
        return sample_classes(labels, probs, labels.numel(), generator)

    sampler.__name__ = name or f"power_sampler({q:g})"
    sampler.q = q  # type: ignore[attr-defined]
    return sampler


def instance_balanced(labels: torch.Tensor, epoch: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random permutation of all images (each image exactly once per epoch)."""
    labels = _check_labels(labels)
    return torch.randperm(labels.numel(), generator=generator)


class_balanced = power_sampler(0.0, "class_balanced")
class_balanced.__doc__ = "Each class drawn with probability 1/C (C = classes with images), then an image uniformly."
square_root = power_sampler(0.5, "square_root")
square_root.__doc__ = "Class j drawn with probability sqrt(n_j) / sum_k sqrt(n_k), then an image uniformly."


def progressively_balanced(total_epochs: int) -> Sampler:
    """``p_j = (1 - lam) n_j / N + lam / C`` with ``lam = t / (T - 1)`` at epoch ``t`` of
    ``T = total_epochs`` (``lam = 0`` when ``T = 1``; epochs past the last stay class-balanced)."""
    if int(total_epochs) < 1:
        raise UserError("total_epochs", total_epochs, "a positive integer")
    total = int(total_epochs)

    def progressively_balanced(labels: torch.Tensor, epoch: int, generator: torch.Generator | None = None
                               ) -> torch.Tensor:
        labels = _check_labels(labels)
        counts = torch.bincount(labels)
        t = min(max(int(epoch), 0), total - 1) / (total - 1) if total > 1 else 0.0
        probs = (1 - t) * class_probabilities(counts, 1.0) + t * class_probabilities(counts, 0.0)
        return sample_classes(labels, probs, labels.numel(), generator)

    progressively_balanced.total_epochs = total  # type: ignore[attr-defined]
    return progressively_balanced


def get_sampler(name: str, total_epochs: int = 1, field: str = "sampler") -> Sampler:
    """A sampler by name: ``instance``, ``class``, ``sqrt`` or ``progressive``."""
    if name == "instance":
        return instance_balanced
    if name == "class":
        return class_balanced
    if name == "sqrt":
        return square_root
    if name == "progressive":
        return progressively_balanced(total_epochs)
    raise UserError(field, name, SAMPLER_NAMES, message=f"unknown sampler {name!r}")
