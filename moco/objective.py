"""The ``moco`` objective: rank networks by how well they learn with Momentum Contrast.

``forward`` makes two views of every image, encodes the first with the query encoder (the
backbone being ranked + a projection head) and the second with the momentum (key) encoder,
and returns the InfoNCE loss over 1 positive + K queued negatives and the instance-
discrimination accuracy (top-1 over 1 + K). In training the batch's keys are then enqueued;
``after_step`` moves the key encoder towards the query encoder. In eval mode (the objective's
own test accuracy) the same step runs on held-out images with BN on batch statistics, as in
training, and changes nothing: no enqueue, BN running statistics restored, no collective call.
The label-free ranking score (:meth:`Moco.heldout_score`) is the top-1 retrieval of every held-out
image's second augmented view among the first views of all held-out images, on the query
backbone's frozen pooled features; the kNN accuracy of those features is a probe that reads labels.
The queue starts empty (only real keys are negatives), so the very first step has no negatives
and a zero loss. The symmetric loss is the sum of both directions, as in the authors' CIFAR demo.

Presets (``moco.version``) fill every option left unset (``null``); explicit values win:

=========  ======  =====  =====  ====  ======  ===========  ==========================  ======
version    K       m      T      dim   head    crop scale   colour jitter (p)           blur p
=========  ======  =====  =====  ====  ======  ===========  ==========================  ======
v1         65536   0.999  0.07   128   linear  (0.2, 1)     (0.4, 0.4, 0.4, 0.4) (1.0)  0
v2         65536   0.999  0.2    128   mlp     (0.2, 1)     (0.4, 0.4, 0.4, 0.1) (0.8)  0.5
cifar      4096    0.99   0.1    128   linear  (0.08, 1)    (0.4, 0.4, 0.4, 0.1) (0.8)  0
=========  ======  =====  =====  ====  ======  ===========  ==========================  ======

All presets: grayscale p=0.2, flip p=0.5, asymmetric loss, split BN. ``cifar`` is the authors'
CIFAR-10 demo (ResNet-18, batch 512, SplitBatchNorm with 8 groups) and the default, as it suits
small datasets. MoCo v1 applied grayscale before the jitter; here every version uses v2's order.
Under data-parallel training (:mod:`unnas.distributed`) BN stays per process (``sync_batchnorm``
is False): each process normalizes its own sub-batch (split into groups as above) and the keys
are shuffled across processes, the reference's shuffle BN.

Rules that depend on the run (checked on the first training batch, and by :meth:`Moco.check_run`
before a run starts):

* ``queue_size`` (K) must be a multiple of the keys enqueued per step (batch size x ranks, x2
  with the symmetric loss) and must not exceed the number of training images (a query's own
  earlier key would then always be a negative). ``queue_size=0`` (default) takes the preset's K,
  capped at half the training images (``DataInfo.num_train``; when the data info does not carry
  it, at 8 steps' keys), rounded down to a multiple of the keys per step.
* ``bn_splits`` (split-BN groups) must divide the batch; ``0`` (default) uses
  ``min(8, batch // 16)`` groups (the demo's 8 x 64 at batch 512, 4 x 16 at batch 64).
* the crop's minimum scale is raised on small images so the smallest crop keeps at least
  8 x 8 pixels (16 px images: 0.25).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from torch import nn
from unnas.moco.augment import ViewConfig, augment_view, scale_for_size, two_views
from unnas.moco.encoder import ema_update, embed, momentum_copy, projection_head
from unnas.moco.loss import info_nce, instance_accuracy
from unnas.moco.queue import KeyQueue, distributed_world, gather_keys
from unnas.moco.splitbn import encode_split, shuffled_forward

from unnas.data.augment import channel_shape
from unnas.errors import UserError
from unnas.objectives.base import Objective
from unnas.precision import full_precision
from unnas.registry import OBJECTIVES

PRESETS: dict[str, dict[str, Any]] = {
    "v1": dict(queue_size=65536, momentum=0.999, temperature=0.07, dim=128, head="linear", symmetric=False,
               crop_min_scale=0.2, jitter=0.4, hue=0.4, jitter_p=1.0, gray_p=0.2, blur_p=0.0),
    "v2": dict(queue_size=65536, momentum=0.999, temperature=0.2, dim=128, head="mlp", symmetric=False,
               crop_min_scale=0.2, jitter=0.4, hue=0.1, jitter_p=0.8, gray_p=0.2, blur_p=0.5),
    "cifar": dict(queue_size=4096, momentum=0.99, temperature=0.1, dim=128, head="linear", symmetric=False,
                  crop_min_scale=0.08, jitter=0.4, hue=0.1, jitter_p=0.8, gray_p=0.2, blur_p=0.0),
}
HEADS = ("linear", "mlp")
MAX_AUTO_SPLITS = 8
MIN_SPLIT = 16
UNKNOWN_DATA_STEPS = 8


@dataclass(frozen=True)
class MocoOptions:
    """Options of the ``moco`` objective (config section ``moco``); ``null`` = the preset's value."""

    version: str = "cifar"  # preset: v1 | v2 | cifar
    queue_size: int = 0  # K negatives; 0 = the preset's, fitted to the data and batch
    momentum: Optional[float] = None  # key encoder EMA m
    temperature: Optional[float] = None  # InfoNCE T
    dim: Optional[int] = None  # embedding dimension
    head: Optional[str] = None  # linear | mlp
    mlp_hidden: int = 0  # hidden width of the MLP head; 0 = the backbone's feature width
    symmetric: Optional[bool] = None  # loss(q1, k2) + loss(q2, k1), both key sets enqueued
    bn_splits: int = 0  # split-BN groups; 0 = min(8, batch // 16); 1 = plain BN
    crop_min_scale: Optional[float] = None  # random resized crop area fraction, lower end
    crop_max_scale: float = 1.0
    jitter: Optional[float] = None  # brightness = contrast = saturation strength
    hue: Optional[float] = None
    jitter_p: Optional[float] = None
    gray_p: Optional[float] = None
    blur_p: Optional[float] = None
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])  # pixels at 224 px
    flip_p: float = 0.5


@dataclass(frozen=True)
class Resolved:
    """Concrete hyperparameters after the preset and the image size are applied."""

    queue_size: int
    momentum: float
    temperature: float
    dim: int
    head: str
    mlp_hidden: int
    symmetric: bool
    bn_splits: int
    views: ViewConfig


def _check(name: str, value: Any, ok: bool, allowed: str) -> None:
    if not ok:
        raise UserError(f"moco.{name}", value, allowed)


def resolve(options: MocoOptions, image_side: int) -> Resolved:
    """Apply the preset to unset options and validate every value (raises :class:`UserError`)."""
    if options.version not in PRESETS:
        raise UserError("moco.version", options.version, sorted(PRESETS), message="unknown preset")
    p = dict(PRESETS[options.version])
    for k in p:
        v = getattr(options, k)
        if v is not None and not (k == "queue_size" and v == 0):
            p[k] = v
    _check("queue_size", options.queue_size, options.queue_size >= 0, "0 (automatic) or a positive integer")
    _check("momentum", p["momentum"], 0.0 <= p["momentum"] < 1.0, "a number in [0, 1)")
    _check("temperature", p["temperature"], p["temperature"] > 0, "a positive number")
    _check("dim", p["dim"], p["dim"] > 0, "a positive integer")
    _check("head", p["head"], p["head"] in HEADS, ", ".join(HEADS))
    _check("mlp_hidden", options.mlp_hidden, options.mlp_hidden >= 0, "0 (backbone width) or a positive integer")
    _check("bn_splits", options.bn_splits, options.bn_splits >= 0, "0 (automatic) or a positive integer")
    lo, hi = p["crop_min_scale"], options.crop_max_scale
    _check("crop_min_scale", lo, 0 < lo <= hi, f"a number in (0, crop_max_scale={hi}]")
    _check("crop_max_scale", hi, lo <= hi <= 1, "a number in [crop_min_scale, 1]")
    _check("jitter", p["jitter"], p["jitter"] >= 0, "a number >= 0")
    _check("hue", p["hue"], 0 <= p["hue"] <= 0.5, "a number in [0, 0.5]")
    for k in ("jitter_p", "gray_p", "blur_p"):
        _check(k, p[k], 0 <= p[k] <= 1, "a probability in [0, 1]")
    _check("flip_p", options.flip_p, 0 <= options.flip_p <= 1, "a probability in [0, 1]")
    sig = list(options.blur_sigma)
    _check("blur_sigma", sig, len(sig) == 2 and 0 < sig[0] <= sig[1], "[min, max] with 0 < min <= max")
    j = float(p["jitter"])
    views = ViewConfig(crop_scale=(scale_for_size(float(lo), image_side), float(hi)),
                       jitter=(j, j, j, float(p["hue"])), jitter_p=float(p["jitter_p"]),
                       gray_p=float(p["gray_p"]), blur_p=float(p["blur_p"]),
                       blur_sigma=(float(sig[0]), float(sig[1])), flip_p=float(options.flip_p))
    views = ViewConfig(**{**views.__dict__, "crop_scale": (min(views.crop_scale[0], hi), hi)})
    return Resolved(queue_size=int(p["queue_size"]), momentum=float(p["momentum"]),
                    temperature=float(p["temperature"]), dim=int(p["dim"]), head=str(p["head"]),
                    mlp_hidden=int(options.mlp_hidden), symmetric=bool(p["symmetric"]),
                    bn_splits=int(options.bn_splits), views=views)


def split_groups(bn_splits: int, batch: int) -> int:
    """Split-BN groups for a batch: the explicit value (must divide it) or the automatic rule."""
    if bn_splits == 0:
        g = max(1, min(MAX_AUTO_SPLITS, batch // MIN_SPLIT))
        while batch % g:
            g -= 1
        return g
    if batch % bn_splits:
        raise UserError("moco.bn_splits", bn_splits, f"a divisor of the batch size {batch}",
                        message="split-BN groups must divide the batch")
    return bn_splits


def queue_length(requested: int, preset: int, keys_per_step: int, num_train: int = 0) -> int:
    """K for a run. ``requested=0``: the preset's K, at most half the training images (or, when
    that number is unknown, at most ``UNKNOWN_DATA_STEPS`` steps' keys: the demo's 8 x 512), rounded
    down to a multiple of ``keys_per_step`` (at least one step's keys)."""
    if requested == 0:
        cap = num_train // 2 if num_train > 0 else UNKNOWN_DATA_STEPS * keys_per_step
        k = min(preset, cap)
        return max(keys_per_step, k // keys_per_step * keys_per_step)
    if requested % keys_per_step:
        raise UserError("moco.queue_size", requested, f"a multiple of the keys enqueued per step ({keys_per_step})",
                        message="the queue length must be a multiple of the batch")
    if num_train > 0 and requested > num_train:
        raise UserError("moco.queue_size", requested, f"at most the number of training images ({num_train})",
                        message="the queue would hold every image's own earlier key")
    return requested


@OBJECTIVES.register("moco", config=MocoOptions)
class Moco(Objective):
    """Momentum Contrast; ``options`` is a :class:`MocoOptions`."""

    name = "moco"
    sync_batchnorm = False  # data-parallel: per-process BN, keys shuffled across processes (shuffle BN)
    fresh_loss_informative = False  # empty queue: the positive is the only logit, the loss is exactly 0
    # the trained features' effective rank: the best worst case over the choosing draws of NAS-Bench-Macro
    # and the default population, where MoCo's own retrieval accuracy ranks Macro in reverse
    default_score = "rankme"

    def __init__(self, backbone, info, options: MocoOptions | None = None):
        super().__init__(backbone, info, options if options is not None else MocoOptions())
        self.hp = resolve(self.options, min(info.image_size))
        hidden = (self.hp.mlp_hidden or backbone.num_features) if self.hp.head == "mlp" else 0
        self.head = projection_head(backbone.num_features, self.hp.dim, hidden)
        self.key_encoder = momentum_copy(nn.ModuleDict({"backbone": backbone, "head": self.head}))
        self.queue = KeyQueue(0, self.hp.dim)

    # -------------------------------------------------------------- run-level checks
    @classmethod
    def check_run(cls, options: MocoOptions | None, train_cfg: Any, info: Any, world: int = 1) -> int:
        """Validate the options against a run's batch size (``train_cfg.batch_size``), image size and
        training-set size (``info.num_train`` when the data info carries it) before anything starts;
        raises :class:`UserError`, returns the queue length K the run will use."""
        options = options if options is not None else MocoOptions()
        hp = resolve(options, min(info.image_size))
        batch = int(train_cfg.batch_size)
        split_groups(hp.bn_splits, batch)
        per_step = batch * world * (2 if hp.symmetric else 1)
        return queue_length(options.queue_size, hp.queue_size, per_step, int(getattr(info, "num_train", 0) or 0))

    def _num_train(self) -> int:
        return int(getattr(self.info, "num_train", 0) or 0)

    def _ensure_queue(self, batch: int, device: torch.device) -> None:
        if self.queue.allocated:
            return
        per_step = batch * distributed_world() * (2 if self.hp.symmetric else 1)
        k = queue_length(self.options.queue_size, self.hp.queue_size, per_step, self._num_train())
        self.queue.to(device)
        self.queue.allocate(k, self.hp.dim)

    # -------------------------------------------------------------- encoders
    def query_embed(self, x: torch.Tensor, groups: int = 1) -> torch.Tensor:
        return encode_split(lambda v: embed(self.backbone, self.head, v), nn.ModuleList([self.backbone, self.head]),
                            x, groups)

    @torch.no_grad()
    def key_embed(self, x: torch.Tensor, groups: int = 1, generator: torch.Generator | None = None,
                  across_ranks: bool = True) -> torch.Tensor:
        """Keys of ``x``: shuffled across ranks under torch.distributed (when ``across_ranks``), or
        within the batch when split BN is on, so a key is normalized with other samples than its query."""
        enc = self.key_encoder

        def fn(v: torch.Tensor) -> torch.Tensor:
            return encode_split(lambda u: embed(enc["backbone"], enc["head"], u), enc, v, groups)

        if groups > 1 or (across_ranks and distributed_world() > 1):
            return shuffled_forward(fn, x, generator, across_ranks)
        return fn(x)

    # -------------------------------------------------------------- objective contract
    def train_input(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        with full_precision(images):
            return self._normalize_unit(augment_view(images, self.hp.views, generator))

    def _normalize_unit(self, x: torch.Tensor) -> torch.Tensor:
        m = torch.as_tensor(self.info.mean, dtype=x.dtype, device=x.device).view(channel_shape(x))
        s = torch.as_tensor(self.info.std, dtype=x.dtype, device=x.device).view(channel_shape(x))
        return (x - m) / s

    def views(self, images: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The two views (float in [0, 1]) whose embeddings form a positive pair."""
        return two_views(images, self.hp.views, generator)

    def positive_pair(self, images: torch.Tensor, generator: torch.Generator | None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """MoCo's own positive pair: its two views, normalized as in training."""
        with full_precision(images):
            v1, v2 = self.views(images, generator)
            return self._normalize_unit(v1), self._normalize_unit(v2)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Training: one MoCo step (the batch's keys are enqueued). Eval mode: the same computation
        on held-out images, BN with batch statistics as in training, and no state change at all
        (BN running statistics are restored, nothing is enqueued)."""
        if self.training:
            return self._step(images, generator, update=True)
        saved = {k: v.clone() for k, v in self.named_buffers() if not k.startswith("queue.")}
        try:
            self.train()
            return self._step(images, generator, update=False)
        finally:
            self.eval()
            current = dict(self.named_buffers())
            with torch.no_grad():
                for k, v in saved.items():
                    current[k].copy_(v)

    def _step(self, images: torch.Tensor, generator: torch.Generator | None, update: bool) -> dict[str, torch.Tensor]:
        b = images.shape[0]
        with full_precision(images):  # the views (blur is a convolution) are data: float32 under autocast too
            v1, v2 = self.views(images, generator)
            v1, v2 = self._normalize_unit(v1), self._normalize_unit(v2)
        if update:
            self._ensure_queue(b, images.device)
            groups = split_groups(self.hp.bn_splits, b)
        else:  # a partial evaluation batch: the largest group count that divides it
            groups = split_groups(0, b) if self.hp.bn_splits == 0 or b % self.hp.bn_splits else self.hp.bn_splits
        negatives = self.queue.negatives().clone()
        t = self.hp.temperature
        q1 = self.query_embed(v1, groups)
        k2 = self.key_embed(v2, groups, generator, update)
        loss, logits = info_nce(q1, k2, negatives, t)
        keys = [k2]
        if self.hp.symmetric:
            q2 = self.query_embed(v2, groups)
            k1 = self.key_embed(v1, groups, generator, update)
            loss2, logits2 = info_nce(q2, k1, negatives, t)
            loss = loss + loss2  # the authors' demo sums the two directions
            logits = torch.cat([logits, logits2])
            keys.append(k1)
        if update:
            self.queue.enqueue(gather_keys(torch.cat(keys)))
        return {"loss": loss, "acc": instance_accuracy(logits.detach()),
                "n": torch.tensor(logits.shape[0])}

    @torch.no_grad()
    def heldout_score(self, split, batch_size: int, seed: int, device: torch.device) -> float:
        """Label-free held-out score: top-1 retrieval of every held-out image's second view
        (:meth:`views`: augmented images, or two windows of a clip) among the first views of all held-out
        images (:func:`unnas.eval.retrieval.view_retrieval_accuracy`),
        on the query backbone's pooled features in eval mode, views drawn with a generator seeded
        with ``seed``. Nothing is changed (eval mode, no gradients, no enqueue)."""
        from unnas.eval.retrieval import view_retrieval_accuracy

        was = self.training
        self.eval()
        gen = torch.Generator().manual_seed(int(seed))
        f1, f2 = [], []
        try:
            for s in range(0, len(split), batch_size):
                v1, v2 = self.views(split.images[s:s + batch_size].to(device), gen)  # clips: two windows
                f1.append(self.backbone.pooled(self._normalize_unit(v1)).float().cpu())
                f2.append(self.backbone.pooled(self._normalize_unit(v2)).float().cpu())
        finally:
            self.train(was)
        return view_retrieval_accuracy(torch.cat(f1), torch.cat(f2))

    @torch.no_grad()
    def after_step(self) -> None:
        ema_update(self.key_encoder, nn.ModuleDict({"backbone": self.backbone, "head": self.head}),
                   self.hp.momentum)
