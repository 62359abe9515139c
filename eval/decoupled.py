"""Decoupled classifier re-balancing on long-tailed data (Kang et al. 2020, arXiv 1910.09217).

Stage 1 trains a backbone and a linear classifier ``(W, b)`` ("joint") on long-tailed data; stage
2 keeps the backbone frozen and re-balances only the classifier. Everything here works on cached
features ``(N, D)`` of the train / val / test splits and never sees a network:

* ``joint``: ``W x + b`` as trained;
* ``ncm``: nearest class mean on centred, L2-normalized features (:mod:`unnas.eval.ncm`);
* ``crt``: classifier re-trained from scratch with class-balanced sampling (:func:`crt`);
* ``tau_norm``: ``w_i / ||w_i||^tau``, bias dropped, ``tau`` from ``linspace(0, 2, 21)`` chosen
  on the validation split (ties: the smaller tau) (:func:`tau_normalize`, :func:`select_tau`,
  :func:`tau_scores`). The rows are normalized in the coordinates the classifier was fitted in
  (:attr:`LinearClassifier.standardize`: a linear probe's standardized features, the raw
  features for the jointly trained head), and only the learned bias is dropped: the centring of
  a standardized probe is part of its feature map, so ``tau = 0`` is the joint classifier less
  its learned bias (small for a probe fitted on balanced classes, as for a head trained with the
  backbone in Kang et al.);
* ``lws``: one learned scale per class, ``f_i (w_i z + b_i)``, the classifier frozen, trained
  with class-balanced sampling from ``f = 1`` (:func:`lws`).

cRT and LWS each get their own sampler: the progressively-balanced one runs over that method's
own epochs (class-balanced in its last), whatever the other's epoch count.

Many / medium / few-shot groups come from the training class counts (:func:`shot_thresholds`):
many-shot ``n > many``, few-shot ``n < few``, medium otherwise. The paper's thresholds are
``many = 100, few = 20``. ``"auto"`` keeps them when each group gets at least one class and
otherwise scales both by ``n_max / 1280`` (1280 = ImageNet-LT's largest class, for which they
were set). A group's accuracy is the top-1 over the test images of its classes; ``all`` is the
top-1 over the whole (balanced) test set. The thresholds used are part of every result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F
from unnas.eval.linear import LinearClassifier, fit_linear, top1, train_sgd
from unnas.eval.ncm import fit_ncm
from unnas.eval.samplers import Sampler, class_balanced, get_sampler

from unnas.errors import UserError
from unnas.registry import EVALUATORS

__all__ = ["PAPER_THRESHOLDS", "IMAGENET_LT_MAX", "METHODS", "GROUPS", "DecoupledOptions", "FeatureSplits",
           "shot_thresholds", "shot_groups", "group_accuracy", "tau_normalize", "select_tau", "tau_scores", "crt", "lws",
           "lws_logits", "run_decoupled", "parse_thresholds"]

PAPER_THRESHOLDS = (100.0, 20.0)  # many: n > 100, few: n < 20
IMAGENET_LT_MAX = 1280
METHODS = ("joint", "ncm", "crt", "tau_norm", "lws")
GROUPS = ("many", "medium", "few", "all")


# ------------------------------------------------------------------ many / medium / few
def parse_thresholds(value: str | Sequence[float] | None) -> str | tuple[float, float]:
    """``"auto"`` / ``"paper"`` / ``"MANY,FEW"`` / ``(many, few)`` -> a mode or a numeric pair."""
    if value is None or value in ("auto", "paper"):
        return value or "auto"
    if isinstance(value, str):
        parts = value.split(",")
        try:
            pair = tuple(float(p) for p in parts)
        except ValueError:
            pair = ()
    else:
        pair = tuple(float(v) for v in value)
    if len(pair) != 2 or not (pair[0] >= pair[1] >= 0):
        raise UserError("--shot-thresholds", value, "auto, paper, or MANY,FEW with MANY >= FEW >= 0")
    return pair  # type: ignore[return-value]


def shot_thresholds(train_counts: Sequence[int], thresholds: str | Sequence[float] = "auto") -> dict:
    """Resolve the thresholds: ``{"many", "few", "rule"}`` (many-shot ``n > many``, few ``n < few``)."""
    mode = parse_thresholds(thresholds)
    counts = [int(c) for c in train_counts]
    if isinstance(mode, tuple):
        return {"many": mode[0], "few": mode[1], "rule": "given"}
    many, few = PAPER_THRESHOLDS
    if mode == "paper":
        return {"many": many, "few": few, "rule": "paper"}
    groups = shot_groups(counts, many, few)
    if all(g in groups for g in ("many", "medium", "few")):
        return {"many": many, "few": few, "rule": "paper"}
    s = max(counts) / IMAGENET_LT_MAX
    return {"many": many * s, "few": few * s, "rule": f"paper scaled by n_max/{IMAGENET_LT_MAX} = {s:.4g}"}


def shot_groups(train_counts: Sequence[int], many: float, few: float) -> list[str]:
    """Group of each class: ``many`` if ``n > many``, ``few`` if ``n < few``, else ``medium``."""
    return ["many" if n > many else "few" if n < few else "medium" for n in (int(c) for c in train_counts)]


def group_accuracy(pred: torch.Tensor, labels: torch.Tensor, groups: Sequence[str]) -> dict[str, float]:
    """Top-1 over the test images of each group's classes (NaN for an empty group) and overall."""
    pred, labels = torch.as_tensor(pred).cpu(), torch.as_tensor(labels).cpu().long()
    correct = (pred == labels).double()
    out = {}
    for g in ("many", "medium", "few"):
        member = torch.tensor([x == g for x in groups], dtype=torch.bool)
        mask = member[labels]
        out[g] = float(correct[mask].mean()) if bool(mask.any()) else float("nan")
    out["all"] = float(correct.mean()) if labels.numel() else float("nan")
    return out


# ------------------------------------------------------------------ classifier adjustments
def tau_normalize(weight: torch.Tensor, tau: float) -> torch.Tensor:
    """Rows ``w_i / ||w_i||^tau`` (``tau = 0``: unchanged; ``tau = 1``: unit norm; zero rows stay 0)."""
    w = torch.as_tensor(weight)
    norms = w.norm(dim=1, keepdim=True)
    return w / torch.where(norms > 0, norms, torch.ones_like(norms)).pow(tau)


def tau_scores(classifier: LinearClassifier, tau: float, feats: torch.Tensor) -> torch.Tensor:
    """Bias-free tau-normalized scores ``z @ tau_normalize(W, tau).T`` of raw features, ``z`` the
    coordinates the classifier was fitted in."""
    z = classifier.standardize(feats).float()
    return z @ tau_normalize(classifier.weight, tau).float().T


def select_tau(weight: torch.Tensor, val_feats: torch.Tensor, val_labels: torch.Tensor,
               taus: Sequence[float] | None = None) -> tuple[float, list[list[float]]]:
    """The tau with the best validation top-1 of the bias-free ``tau_normalize(W, tau) x`` (ties:
    the smallest tau) and the curve ``[[tau, val_top1], ...]``. ``val_feats`` are in the
    coordinates of ``weight`` (:meth:`LinearClassifier.standardize`)."""
    taus = [float(t) for t in (taus if taus is not None else torch.linspace(0, 2, 21).tolist())]
    if not taus:
        raise UserError("taus", taus, "at least one value")
    x = torch.as_tensor(val_feats).float()
    curve = [[round(t, 10), top1(x @ tau_normalize(weight, t).float().T, val_labels)] for t in taus]
    best = max(curve, key=lambda tc: (tc[1], -tc[0]))
    return best[0], curve


def crt(train_feats: torch.Tensor, train_labels: torch.Tensor, num_classes: int, *,
        sampler: Sampler = class_balanced, epochs: int = 30, batch_size: int = 256, lr: float = 0.1,
        weight_decay: float = 5e-4, generator: torch.Generator | None = None) -> LinearClassifier:
    """Classifier re-training: a fresh (zero-initialized) linear classifier, SGD with ``sampler``."""
    return fit_linear(train_feats, train_labels, num_classes, optimizer="sgd", sampler=sampler, epochs=epochs,
                      batch_size=batch_size, lr=lr, weight_decay=weight_decay, generator=generator)


def lws_logits(weight: torch.Tensor, bias: torch.Tensor, scales: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """``f_i * (w_i x + b_i)``: the joint logits scaled per class."""
    x = torch.as_tensor(feats).to(weight.dtype)
    return (x @ weight.T + bias) * scales


def lws(weight: torch.Tensor, bias: torch.Tensor, train_feats: torch.Tensor, train_labels: torch.Tensor, *,
        sampler: Sampler = class_balanced, epochs: int = 30, batch_size: int = 256, lr: float = 0.1,
        weight_decay: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Learnable weight scaling: the per-class scales ``f`` (from 1) minimizing the cross-entropy
    of :func:`lws_logits` over ``sampler``'s batches; ``W`` and ``b`` stay frozen."""
    with torch.no_grad():
        base = torch.as_tensor(train_feats).float() @ weight.float().T + bias.float()
    y = torch.as_tensor(train_labels).long()
    f = torch.ones(weight.shape[0], requires_grad=True)
    train_sgd([f], lambda idx: F.cross_entropy(base[idx] * f, y[idx]), y, sampler=sampler, epochs=epochs,
              batch_size=batch_size, lr=lr, weight_decay=weight_decay, decay_params=[f], generator=generator)
    return f.detach()


# ------------------------------------------------------------------ all methods
@dataclass(frozen=True)
class DecoupledOptions:
    """Stage-2 settings (defaults: cRT and LWS for 30 epochs of class-balanced SGD on the features)."""

    taus: tuple[float, ...] = tuple(round(0.1 * i, 10) for i in range(21))  # linspace(0, 2, 21)
    thresholds: str | tuple[float, float] = "auto"
    sampler: str = "class"  # stage-2 sampler of cRT and LWS: instance | class | sqrt | progressive
    crt_epochs: int = 30
    crt_lr: float = 0.1
    crt_weight_decay: float = 5e-4
    lws_epochs: int = 30
    lws_lr: float = 0.1
    batch_size: int = 256
    methods: tuple[str, ...] = METHODS


@dataclass
class FeatureSplits:
    """Cached features and labels of the three splits (the train split is the long-tailed one)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    extra: dict = field(default_factory=dict)


@EVALUATORS.register("decoupled")
def run_decoupled(feats: FeatureSplits, joint: LinearClassifier, num_classes: int,
                  options: DecoupledOptions = DecoupledOptions(), seed: int = 0,
                  stage2_x: torch.Tensor | None = None, stage2_y: torch.Tensor | None = None) -> dict:
    """Every stage-2 method on the same features. ``stage2_x/y`` (default: the train features)
    are what cRT and LWS train on, e.g. features of augmented training images.

    Returns ``{"train_counts", "thresholds" {many, few, rule}, "groups" (per class),
    "group_sizes", "methods": {name: {many, medium, few, all, val_all, ...}}}``; ``tau_norm``
    also has ``tau`` and ``val_curve``, ``crt`` / ``lws`` their settings, ``lws`` its ``scales``."""
    unknown = [m for m in options.methods if m not in METHODS]
    if unknown:
        raise UserError("methods", unknown[0], METHODS)
    counts = torch.bincount(torch.as_tensor(feats.train_y).long(), minlength=num_classes).tolist()
    th = shot_thresholds(counts, options.thresholds)
    groups = shot_groups(counts, th["many"], th["few"])
    sx = feats.train_x if stage2_x is None else stage2_x
    sy = feats.train_y if stage2_y is None else stage2_y
    W, b = joint.weight.float(), joint.bias.float()
    out: dict = {"train_counts": counts, "thresholds": th, "groups": groups,
                 "group_sizes": {g: groups.count(g) for g in ("many", "medium", "few")},
                 "stage2_samples": int(torch.as_tensor(sy).numel()), "methods": {}}

    def report(name: str, scores_fn, **extra) -> None:
        res = group_accuracy(scores_fn(feats.test_x).argmax(1), feats.test_y, groups)
        res["val_all"] = top1(scores_fn(feats.val_x), feats.val_y)
        out["methods"][name] = {**res, **extra}

    for m in options.methods:
        gen = torch.Generator().manual_seed(int(seed))
        if m == "joint":
            report("joint", joint.logits)
        elif m == "ncm":
            report("ncm", fit_ncm(feats.train_x, feats.train_y, num_classes).scores)
        elif m == "crt":
            sampler = get_sampler(options.sampler, max(1, options.crt_epochs), "stage-2 sampler")
            clf = crt(sx, sy, num_classes, sampler=sampler, epochs=options.crt_epochs, batch_size=options.batch_size,
                      lr=options.crt_lr, weight_decay=options.crt_weight_decay, generator=gen)
            report("crt", clf.logits, epochs=options.crt_epochs, sampler=options.sampler,
                   sampler_epochs=options.crt_epochs)
        elif m == "tau_norm":
            tau, curve = select_tau(W, joint.standardize(feats.val_x), feats.val_y, options.taus)
            report("tau_norm", lambda x: tau_scores(joint, tau, x), tau=tau, val_curve=curve)
        elif m == "lws":
            sampler = get_sampler(options.sampler, max(1, options.lws_epochs), "stage-2 sampler")
            f = lws(W, b, joint.standardize(sx), sy, sampler=sampler, epochs=options.lws_epochs,
                    batch_size=options.batch_size, lr=options.lws_lr, generator=gen)
            report("lws", lambda x: lws_logits(W, b, f, joint.standardize(x)), scales=f.tolist(),
                   epochs=options.lws_epochs, sampler=options.sampler, sampler_epochs=options.lws_epochs)
    out["options"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()}
    return out
