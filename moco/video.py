"""``clip-moco``: Momentum Contrast on video, two clips of the same video as the positive pair.

Each stored clip ``(T, C, H, W)`` is a video; a training step cuts two windows of
``clip_frames`` consecutive frames from it at independently drawn offsets (they may overlap;
``clip_frames = T`` makes them the same frames) and augments each window with MoCo's view
augmentation (:func:`unnas.moco.augment.augment_view`), one set of random parameters per window for all
its frames (a crop, a jitter, a flip of the whole window). Query and key are the two windows;
everything else (queue, momentum encoder, split BN, presets, the ``moco`` options) is
:class:`unnas.moco.objective.Moco`'s. Features for evaluation are those of the centre window, as the
network saw windows of that length in training. No label is read.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from unnas.moco.augment import ViewConfig, augment_view
from unnas.moco.objective import Moco, MocoOptions

from unnas.errors import UserError
from unnas.objectives.base import DataInfo
from unnas.registry import OBJECTIVES


@dataclass(frozen=True)
class ClipMocoOptions(MocoOptions):
    """``moco``'s options plus the window length (config section ``clip-moco``)."""

    clip_frames: int = 0  # frames per window; 0 = half the stored clip (at least 1)


def window_length(requested: int, frames: int) -> int:
    """Frames per window: ``requested``, or half of ``frames`` (at least 1) when it is 0."""
    if requested < 0 or requested > frames:
        raise UserError("clip-moco.clip_frames", requested, f"0 (half the clip) or 1..{frames} (the clip length)")
    return requested or max(1, frames // 2)


def take_windows(clips: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """``clips[i, starts[i]:starts[i] + length]`` for every ``i``: ``(B, length, C, H, W)``."""
    idx = starts.to(clips.device)[:, None] + torch.arange(length, device=clips.device)
    return clips[torch.arange(clips.shape[0], device=clips.device)[:, None], idx]


def random_starts(n: int, frames: int, length: int, generator: torch.Generator | None) -> torch.Tensor:
    """Window offsets, uniform over ``0 .. frames - length``."""
    return torch.randint(0, frames - length + 1, (n,), generator=generator)


def clip_view(clips: torch.Tensor, cfg: ViewConfig, generator: torch.Generator | None) -> torch.Tensor:
    """MoCo's view augmentation of clips ``(B, L, C, H, W)`` -> float in [0, 1]: every frame of a clip
    gets the same random parameters (each frame is augmented from the same generator state, so the
    draws repeat; ``generator`` then continues after one frame's draws)."""
    if generator is None:
        generator = torch.Generator().manual_seed(int(torch.randint(0, 2 ** 62, (1,))))
    state = generator.get_state()
    frames = []
    for t in range(clips.shape[1]):
        generator.set_state(state)
        frames.append(augment_view(clips[:, t], cfg, generator))
    return torch.stack(frames, dim=1)


@OBJECTIVES.register("clip-moco", config=ClipMocoOptions)
class ClipMoco(Moco):
    """MoCo whose positive pair is two windows of one clip; ``options`` is a :class:`ClipMocoOptions`."""

    name = "clip-moco"
    data_kinds = ("video",)
    default_score = "pretext"  # the image objective's choice was not measured on clips

    def __init__(self, backbone, info: DataInfo, options: ClipMocoOptions | None = None):
        options = options if options is not None else ClipMocoOptions()
        super().__init__(backbone, info, options)
        self.length = window_length(options.clip_frames, info.frames)

    @classmethod
    def check_data(cls, info: DataInfo, options: ClipMocoOptions | None = None) -> None:
        if info.frames:
            window_length((options or ClipMocoOptions()).clip_frames, info.frames)

    def views(self, images, generator):
        b, t = images.shape[:2]
        w1 = take_windows(images, random_starts(b, t, self.length, generator), self.length)
        w2 = take_windows(images, random_starts(b, t, self.length, generator), self.length)
        v = clip_view(torch.cat([w1, w2]), self.hp.views, generator)
        return v[:b], v[b:]

    def train_input(self, images, generator):
        b, t = images.shape[:2]
        w = take_windows(images, random_starts(b, t, self.length, generator), self.length)
        return self._normalize_unit(clip_view(w, self.hp.views, generator))

    def eval_input(self, images):
        b, t = images.shape[:2]
        starts = torch.full((b,), (t - self.length) // 2, dtype=torch.long)
        return self.normalize(take_windows(images, starts, self.length))
