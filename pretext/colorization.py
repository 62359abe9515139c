"""Colorization as classification (Zhang et al. 2016, as in UnNAS): from the lightness L, predict
each pixel's quantized ab colour.

* Input: the CIE L channel only. The backbone is built with **one** input channel
  (:meth:`Colorization.input_channels` returns 1); L is normalized as UnNAS does,
  ``(L / 100 - mean(dataset mean)) / mean(dataset std)``.
* Target: the pixel's ab value quantized to the nearest in-gamut bin of grid size 10, one class
  per bin, hard labels, no class rebalancing. ``gamut="centre"`` (default): the 229 bins hit by
  8-bit sRGB colours whose centre is itself an sRGB colour; ``gamut="hit"``: all 261 bins hit
  (:func:`unnas.pretext.color.ab_gamut`).
* Head: a 1x1 convolution on the backbone's feature map (``forward_features``), bilinear
  upsampling of the logits to the input size, per-pixel cross-entropy. The reported accuracy is
  the per-pixel bin accuracy over ``n = B * H * W`` pixels.
* Precision: the Lab conversion and the bin lookup always run in float32 (under a bfloat16
  autocast too: its matrix product would otherwise round the colours to 8 significant bits).
* Training augmentation: a random horizontal flip (applied to the image before the conversion,
  so input and target stay aligned), as UnNAS does on CIFAR.

Grayscale data carries no colour, so the objective refuses 1-channel datasets
(:meth:`Colorization.check_data`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from unnas.pretext.color import GAMUTS, ab_gamut, quantize_ab, uint8_to_lab

from unnas.data.augment import random_flip
from unnas.errors import UserError
from unnas.objectives.base import DataInfo, Objective
from unnas.precision import full_precision
from unnas.registry import OBJECTIVES


@dataclass(frozen=True)
class ColorizationOptions:
    flip: bool = True  # random horizontal flip in training
    gamut: str = "centre"  # ab classes: "centre" (229 bins, centres in sRGB) or "hit" (261 bins)


@OBJECTIVES.register("colorization", config=ColorizationOptions)
class Colorization(Objective):
    name = "colorization"
    max_eval_batch = 32  # 32 x bins x H x W logits per evaluation batch
    needs_spatial = True

    def __init__(self, backbone, info, options: ColorizationOptions | None = None):
        options = options or ColorizationOptions()
        self.check_data(info, options)
        super().__init__(backbone, info, options)
        gamut = ab_gamut(options.gamut)
        self.num_bins = gamut.num_bins
        self.register_buffer("lut", gamut.lut.clone(), persistent=False)
        self.register_buffer("centers", gamut.centers.float(), persistent=False)
        self._lo, self._hi = gamut.lo, gamut.hi
        self.l_mean = float(sum(info.mean) / len(info.mean))
        self.l_std = float(sum(info.std) / len(info.std))
        self.head = nn.Conv2d(backbone.num_features, self.num_bins, kernel_size=1)

    @classmethod
    def input_channels(cls, data_channels: int) -> int:
        return 1

    @classmethod
    def check_data(cls, info: DataInfo, options=None) -> None:
        if info.channels != 3:
            raise UserError("--data", f"{info.channels} channel(s)",
                            "an RGB dataset (cifar10, cifar100, fake, an RGB imagefolder) or another pretext",
                            message=f"colorization predicts colour from lightness, so it needs RGB images; "
                                    f"this dataset has {info.channels} channel(s)")
        if options is not None and options.gamut not in GAMUTS:
            raise UserError("colorization.gamut", options.gamut, GAMUTS)

    def prepare(self, images: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 RGB ``(B, 3, H, W)`` -> normalized L ``(B, 1, H, W)`` and bin targets ``(B, H, W)``."""
        if self.training and self.options.flip:
            images = random_flip(images, generator)
        with full_precision(images):  # Lab maths and the bin lookup in float32 under autocast too
            lab = uint8_to_lab(images)
            target = quantize_ab(lab[:, 1:], self.lut, self._lo, self._hi, self.centers)
        return (lab[:, :1] / 100.0 - self.l_mean) / self.l_std, target

    def eval_input(self, images):
        """Normalized L of the unaugmented images ``(B, 1, H, W)``."""
        with full_precision(images):
            return (uint8_to_lab(images)[:, :1] / 100.0 - self.l_mean) / self.l_std

    def train_input(self, images, generator):
        return self.prepare(images, generator)[0]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Per-pixel bin logits ``(B, Q, H, W)`` for normalized L input ``(B, 1, H, W)``."""
        fmap = self.backbone.forward_features(x)
        return F.interpolate(self.head(fmap), size=x.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, images, labels=None, generator=None):
        x, target = self.prepare(images, generator)
        logits = self.logits(x)
        return {"loss": F.cross_entropy(logits, target),
                "acc": (logits.argmax(dim=1) == target).float().mean(),
                "n": torch.tensor(target.numel())}
