"""Objective contract.

An objective is an ``nn.Module`` that owns the backbone plus its own heads. It is built with
``build_objective(name, backbone, info, options)`` and trained by the one engine loop:

* ``forward(images, labels, generator) -> {"loss", "acc", "n"}`` takes a uint8 batch
  ``(B, C, H, W)`` (clips: ``(B, T, C, H, W)``); label-free objectives receive ``labels=None`` (the engine never passes
  labels to an objective whose ``uses_labels`` is False). ``acc`` is the objective's own
  accuracy on the batch (a 0-dim tensor in [0, 1]) over ``n`` predictions.
* ``after_step()`` runs after each optimizer step (MoCo's momentum update).
* ``heldout_score(split, batch_size, seed, device)`` (optional) is the label-free held-out score
  that ranks candidates when the objective's own accuracy is not it (MoCo: view retrieval).
* ``positive_pair(images, generator)`` is two augmented views of the same images, as the backbone
  sees them (the positive pairs of the alignment score, :mod:`unnas.eval.trained`).
* ``eval_input(images)`` is the float tensor the backbone sees for feature extraction;
  ``train_input(images, generator)`` the one it sees in training (used for precise BN).
* ``input_channels(data_channels)`` (class method) is the channel count the backbone must be
  built with (colorization: 1); ``check_data(info, options)`` (class method) refuses data or
  options the objective cannot work with, before any job starts.
* ``data_kinds`` says which data an objective works on (``"image"``, ``"video"``);
  ``check_kind(info)`` refuses the others with one line (also when the objective is built).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from unnas.data.augment import mean_fill, standard_augment, to_float
from unnas.errors import UserError
from unnas.registry import OBJECTIVES
from unnas.spec import Backbone


@dataclass(frozen=True)
class DataInfo:
    """What an objective needs to know about the data."""

    channels: int
    num_classes: int
    image_size: tuple[int, int]
    mean: Sequence[float]
    std: Sequence[float]
    num_train: int = 0  # training images (0 = unknown)
    frames: int = 0  # frames per clip of video data; 0 = images

    @classmethod
    def of(cls, data) -> "DataInfo":
        return cls(data.channels, data.num_classes, data.image_size, tuple(data.mean), tuple(data.std),
                   len(data.train), int(getattr(data, "frames", 0)))

    @property
    def kind(self) -> str:
        """``"video"`` for clips ``(N, T, C, H, W)``, ``"image"`` otherwise."""
        return "video" if self.frames else "image"

    def input_shape(self, channels: int | None = None) -> tuple[int, ...]:
        """Shape of one sample, ``(C, H, W)`` or ``(T, C, H, W)``, with ``channels`` channels."""
        c = self.channels if channels is None else channels
        return ((self.frames,) if self.frames else ()) + (c, *self.image_size)


def describe(info: DataInfo) -> str:
    """``"images"`` or ``"video clips of 8 frames"``: what the data holds, for error messages."""
    return f"video clips of {info.frames} frames" if info.frames else "images"


class Objective(nn.Module):
    name: str = ""
    uses_labels: bool = False
    needs_spatial: bool = False  # requires a (B, C, h, w) feature map from the backbone
    # data-parallel training: BN over the global batch of every process (False: each process
    # normalizes its own sub-batch, e.g. MoCo's shuffle BN)
    sync_batchnorm: bool = True
    data_kinds: tuple[str, ...] = ("image",)  # the kinds of data (DataInfo.kind) it works on
    # whether the loss of a fresh, untrained objective carries a gradient signal (what the loss-based
    # zero-cost proxies read); False for MoCo, whose queue starts empty: its first InfoNCE is 0
    fresh_loss_informative: bool = True
    # the ranking column ``--score default`` picks for this objective: ``pretext`` (its own held-out
    # score) or a trained-network score (unnas.registry.TRAINED_SCORES), chosen on measurements over
    # more than one population (docs/results/trained-scores.md)
    default_score: str = "pretext"

    def __init__(self, backbone: Backbone, info: DataInfo, options: Any = None):
        self.check_kind(info)
        super().__init__()
        if self.needs_spatial and not getattr(backbone, "has_spatial", True):
            raise UserError("--pretext", self.name, "objectives that work on pooled features",
                            message=f"{type(backbone).__name__} has no spatial feature map, "
                                    f"which {self.name} needs")
        self.backbone = backbone
        self.info = info
        self.options = options

    @classmethod
    def input_channels(cls, data_channels: int) -> int:
        return data_channels

    @classmethod
    def check_kind(cls, info: DataInfo) -> None:
        """Raise :class:`UserError` (naming the objectives that fit) unless the objective works on
        this kind of data: image objectives refuse clips, video objectives refuse images."""
        if info.kind in cls.data_kinds:
            return
        fit = [n for n in OBJECTIVES.names() if info.kind in getattr(OBJECTIVES.get(n), "data_kinds", ("image",))]
        raise UserError("--pretext", cls.name, fit, message=f"{cls.name} works on {' and '.join(cls.data_kinds)} "
                                                            f"data, and this dataset holds {describe(info)}")

    @classmethod
    def check_data(cls, info: DataInfo, options: Any = None) -> None:
        """Raise :class:`UserError` if the objective (with these options) cannot work on this data.
        Called before a run starts, so that a bad combination is refused before any job runs."""

    @classmethod
    def check_run(cls, options: Any, train_cfg: Any, info: DataInfo) -> None:
        """Raise :class:`UserError` if the options cannot work with this training configuration
        (e.g. MoCo's queue length against the batch size), before any job starts."""

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        return to_float(images, self.info.mean, self.info.std)

    def eval_input(self, images: torch.Tensor) -> torch.Tensor:
        return self.normalize(images)

    def augment(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """uint8 pad-crop (padding with the dataset's mean colour) and flip (one per clip for video)."""
        return standard_augment(images, generator, fill=mean_fill(self.info.mean))

    def train_input(self, images: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        return self.normalize(self.augment(images, generator))

    def positive_pair(self, images: torch.Tensor, generator: torch.Generator | None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two independently augmented views of ``images`` (:meth:`augment`, then :meth:`eval_input`)."""
        return self.eval_input(self.augment(images, generator)), self.eval_input(self.augment(images, generator))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features for evaluation (kNN, probes)."""
        return self.backbone.pooled(self.eval_input(images))

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise TypeError(f"objective {self.name} does not define forward")

    def after_step(self) -> None:
        pass

    def heldout_score(self, split: Any, batch_size: int, seed: int, device: torch.device) -> float | None:
        """The objective's label-free held-out score when it is not the objective's own held-out
        accuracy (``None``, the default: the runner uses that accuracy). Must not read labels."""
        return None


def objective_class(name: str) -> type[Objective]:
    return OBJECTIVES.get(name)


def default_score(objective: str) -> str:
    """The ranking column ``--score default`` stands for with ``objective`` first: its class's
    ``default_score`` (``pretext`` for a name not registered in this process, e.g. a plugin's)."""
    if objective not in OBJECTIVES:
        return "pretext"
    return getattr(objective_class(objective), "default_score", "pretext")


def build_objective(name: str, backbone: Backbone, info: DataInfo, options: Any = None) -> Objective:
    cls = objective_class(name)
    check = getattr(cls, "check_kind", None)
    if check is not None:  # before the objective's own checks, which may assume their kind of data
        check(info)
    if options is None:
        opt_cls = OBJECTIVES.meta(name).get("config")
        options = opt_cls() if opt_cls is not None else None
    return cls(backbone, info, options)


def accuracy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(dim=1) == target).float().mean()
