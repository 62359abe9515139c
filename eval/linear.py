"""Linear classifiers on cached (frozen) features: the linear probe and its training loops.

Everything here is a function of feature tensors; nothing touches a backbone. Conventions:

* A :class:`LinearClassifier` holds ``weight (C, D)`` and ``bias (C,)`` in the coordinates it
  was fitted in, ``z = (x - mean) / std`` (``mean`` / ``std`` ``None``: the raw features), and
  takes raw features: ``logits(x) = z @ weight.T + bias``. The centring ``-weight @ mean / std``
  belongs to the feature map, not to the learned bias, so methods that rescale the rows or drop
  the bias (tau-norm) act on what was learned.
* :func:`fit_linear` minimizes ``mean cross-entropy + weight_decay / 2 * ||W||^2`` (bias not
  decayed). With ``standardize=True`` (default) it fits on features standardized with the
  training mean / std (kept in the classifier), so the decay acts on the standardized scale.
  Optimizers: full-batch L-BFGS (strong Wolfe line search,
  deterministic) or mini-batch SGD with momentum and a cosine schedule whose batches come from a
  sampler of :mod:`unnas.eval.samplers` (class-balanced for cRT). Weights start at zero (the problem is
  convex), so the only randomness is the SGD batch order from the explicit generator.
* :func:`linear_probe` picks the weight decay with the best validation top-1 (ties: the larger
  decay) and reports validation and test top-1 of that classifier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from unnas.eval.samplers import Sampler, instance_balanced

from unnas.errors import UserError
from unnas.registry import EVALUATORS

__all__ = ["LinearClassifier", "fit_linear", "linear_probe", "probe_objective", "top1", "train_sgd", "DEFAULT_WEIGHT_DECAYS",
           "OPTIMIZERS"]

DEFAULT_WEIGHT_DECAYS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
OPTIMIZERS = ("lbfgs", "sgd")


@dataclass(frozen=True)
class LinearClassifier:
    weight: torch.Tensor  # (C, D), acting on standardize(x)
    bias: torch.Tensor  # (C,)
    mean: torch.Tensor | None = None  # (D,) the standardization fitted in; None: raw features
    std: torch.Tensor | None = None  # (D,)

    def standardize(self, feats: torch.Tensor) -> torch.Tensor:
        """Raw features -> the coordinates the classifier was fitted in."""
        x = torch.as_tensor(feats).to(self.weight.dtype)
        if self.mean is not None:
            x = x - self.mean.to(x.dtype)
        if self.std is not None:
            x = x / self.std.to(x.dtype)
        return x

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        return self.standardize(feats) @ self.weight.T + self.bias

    def predict(self, feats: torch.Tensor) -> torch.Tensor:
        return self.logits(feats).argmax(dim=1)


def top1(pred_or_logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of correct predictions (accepts class indices or ``(N, C)`` scores)."""
    p = pred_or_logits.argmax(dim=1) if pred_or_logits.dim() == 2 else pred_or_logits
    labels = torch.as_tensor(labels)
    if labels.numel() == 0:
        return float("nan")
    return float((p.cpu() == labels.cpu()).double().mean())


def _check(feats: torch.Tensor, labels: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = torch.as_tensor(feats), torch.as_tensor(labels)
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise ValueError(f"{name}: need features (N, D) and labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name}: features contain NaN or infinite values")
    return x, y.long()


def train_sgd(params: Sequence[torch.Tensor], batch_loss: Callable[[torch.Tensor], torch.Tensor],
              labels: torch.Tensor, *, sampler: Sampler, epochs: int, batch_size: int, lr: float,
              momentum: float = 0.9, weight_decay: float = 0.0, decay_params: Iterable[torch.Tensor] = (),
              generator: torch.Generator | None = None) -> list[float]:
    """Mini-batch SGD over indices from ``sampler`` with a per-step cosine schedule.

    ``batch_loss(idx)`` returns the mean loss of the batch; ``weight_decay`` applies only to
    ``decay_params`` (as ``weight_decay / 2 * ||p||^2``). Returns the mean loss of each epoch."""
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 0, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    decay = list(decay_params)
    decay_ids = {id(p) for p in decay}
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": [p for p in params if id(p) not in decay_ids], "weight_decay": 0.0}]
    opt = torch.optim.SGD([g for g in groups if g["params"]], lr=lr, momentum=momentum)
    n = int(labels.shape[0])
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    total, step, history = epochs * steps_per_epoch, 0, []
    for epoch in range(epochs):
        order = sampler(labels, epoch, generator)
        losses = []
        for i in range(0, order.numel(), batch_size):
            for g in opt.param_groups:
                g["lr"] = 0.5 * lr * (1 + math.cos(math.pi * step / total))
            loss = batch_loss(order[i:i + batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        history.append(sum(losses) / max(1, len(losses)))
    return history


def fit_linear(feats: torch.Tensor, labels: torch.Tensor, num_classes: int, *, weight_decay: float = 1e-4,
               optimizer: str = "lbfgs", standardize: bool = True, max_iter: int = 300,
               sampler: Sampler = instance_balanced, epochs: int = 30, batch_size: int = 256, lr: float = 0.1,
               momentum: float = 0.9, generator: torch.Generator | None = None) -> LinearClassifier:
    """Fit a softmax-regression classifier ``(C, D)`` on features (see the module docstring)."""
    x, y = _check(feats, labels, "fit_linear")
    if optimizer not in OPTIMIZERS:
        raise UserError("optimizer", optimizer, OPTIMIZERS)
    if weight_decay < 0:
        raise UserError("weight_decay", weight_decay, "a value >= 0")
    if int(y.max()) >= num_classes:
        raise ValueError(f"label {int(y.max())} out of range for {num_classes} classes")
    dtype = torch.float64 if optimizer == "lbfgs" else torch.float32
    x = x.to(dtype)
    if standardize:
        mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    else:
        mean, std = torch.zeros(x.shape[1], dtype=dtype), torch.ones(x.shape[1], dtype=dtype)
    z = (x - mean) / std
    w = torch.zeros(num_classes, x.shape[1], dtype=dtype, requires_grad=True)
    b = torch.zeros(num_classes, dtype=dtype, requires_grad=True)
    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20,
                                tolerance_grad=1e-9, tolerance_change=1e-12, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(z @ w.T + b, y) + 0.5 * weight_decay * w.pow(2).sum()
            loss.backward()
            return loss

        opt.step(closure)
    else:
        train_sgd([w, b], lambda idx: F.cross_entropy(z[idx] @ w.T + b, y[idx]), y, sampler=sampler,
                  epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum, weight_decay=weight_decay,
                  decay_params=[w], generator=generator)
    if not standardize:
        return LinearClassifier(w.detach().float(), b.detach().float())
    return LinearClassifier(w.detach().float(), b.detach().float(), mean.float(), std.float())


@EVALUATORS.register("linear")
def linear_probe(train_feats: torch.Tensor, train_labels: torch.Tensor, val_feats: torch.Tensor | None,
                 val_labels: torch.Tensor | None, test_feats: torch.Tensor | None = None,
                 test_labels: torch.Tensor | None = None, *, num_classes: int | None = None,
                 weight_decays: Sequence[float] = DEFAULT_WEIGHT_DECAYS, optimizer: str = "lbfgs",
                 seed: int = 0, **fit_kwargs) -> dict:
    """Linear probe: one classifier per weight decay, the best on validation is reported.

    Returns ``{"top1" (test, NaN without a test split), "val_top1", "weight_decay" (chosen),
    "val_curve": [[wd, val_top1], ...], "optimizer", "classifier"}``. With one weight decay the
    validation split may be ``None``."""
    x, y = _check(train_feats, train_labels, "train")
    c = int(num_classes if num_classes is not None else int(y.max()) + 1)
    wds = sorted(float(w) for w in weight_decays)
    if not wds:
        raise UserError("weight_decays", weight_decays, "at least one value")
    if val_feats is None and len(wds) > 1:
        raise UserError("val split", None, "a validation split", message="needed to choose the weight decay")
    curve, best = [], None
    for wd in wds:
        g = torch.Generator().manual_seed(seed)
        clf = fit_linear(x, y, c, weight_decay=wd, optimizer=optimizer, generator=g, **fit_kwargs)
        acc = top1(clf.logits(val_feats), val_labels) if val_feats is not None else float("nan")
        curve.append([wd, acc])
        if best is None or not acc < best[1]:  # ties (and NaN with one decay) go to the later, larger decay
            best = (wd, acc, clf)
    wd, val_acc, clf = best
    test_acc = top1(clf.logits(test_feats), test_labels) if test_feats is not None else float("nan")
    return {"top1": test_acc, "val_top1": val_acc, "weight_decay": wd, "val_curve": curve,
            "optimizer": optimizer, "classifier": clf}


def probe_objective(objective, data, *, cache_dir=None, batch_size: int = 256, device="cpu", **probe_kwargs) -> dict:
    """Linear probe of a frozen network on ``data`` (train / val / test splits): features through
    :func:`unnas.eval.cache.cached_features` (eval mode, no gradients), then :func:`linear_probe`.
    The network's weights, BN running statistics and train/eval flags are left as they were."""
    from unnas.eval.cache import cached_features

    f = {s: cached_features(objective, getattr(data, s).images, cache_dir=cache_dir, batch_size=batch_size,
                            device=device, label={"split": s}) for s in ("train", "val", "test")}
    return linear_probe(f["train"], data.train.labels, f["val"], data.val.labels, f["test"], data.test.labels,
                        num_classes=data.num_classes, **probe_kwargs)
