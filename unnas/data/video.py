"""Embedded video data: ``moving-digits``, clips of scikit-learn's handwritten digits moving over a
black canvas (in the manner of Moving MNIST), one clip per digit image, labelled by its digit.

Each of the 1,797 digits (8 x 8, scaled to ``image_size // 2``) starts at a uniformly drawn
position of an ``image_size x image_size`` canvas with a uniformly drawn direction and an initial
speed of ``U(1, 2) * image_size / 16`` pixels per frame; the speed decays by :data:`FRICTION` every
frame, so motion runs fast-to-slow and the arrow of time is visible in every clip. The digit
bounces off the borders (positions are reflected). ``data.frames`` frames per clip, one channel,
uint8 ``(N, T, 1, S, S)``. Trajectories come from ``numpy.random.default_rng(data.seed + 7)``
only: the same configuration always gives the same clips.
"""

from __future__ import annotations

import numpy as np

from unnas.data.core import RawData
from unnas.data.datasets import _resize
from unnas.errors import UserError
from unnas.registry import DATASETS

FRICTION = 0.8  # speed kept from one frame to the next


def trajectories(n: int, frames: int, room: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Top-left corners ``(n, frames, 2)`` (integers in ``[0, room]``) of ``n`` bouncing, slowing digits."""
    pos = rng.uniform(0, room, size=(n, 2))
    angle = rng.uniform(0, 2 * np.pi, size=n)
    speed = rng.uniform(1.0, 2.0, size=n) * scale
    vel = np.stack([np.sin(angle), np.cos(angle)], axis=1) * speed[:, None]
    out = np.empty((n, frames, 2), dtype=np.int64)
    for t in range(frames):
        out[:, t] = np.clip(np.rint(pos), 0, room)
        pos = pos + vel
        vel = vel * FRICTION
        for _ in range(2):  # reflect at both borders (a fast digit may cross one twice)
            low, high = pos < 0, pos > room
            pos = np.where(low, -pos, np.where(high, 2 * room - pos, pos))
            vel = np.where(low | high, -vel, vel)
    return out


def render(digits: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """Paste ``digits`` ``(n, d, d)`` at ``corners`` ``(n, T, 2)`` on black canvases: ``(n, T, 1, size, size)``."""
    n, d = digits.shape[0], digits.shape[-1]
    frames = corners.shape[1]
    out = np.zeros((n, frames, size, size), dtype=np.uint8)
    rows = corners[..., 0, None, None] + np.arange(d)[:, None]  # (n, T, d, 1)
    cols = corners[..., 1, None, None] + np.arange(d)[None, :]  # (n, T, 1, d)
    ni = np.arange(n)[:, None, None, None]
    ti = np.arange(frames)[None, :, None, None]
    out[ni, ti, rows, cols] = digits[:, None]
    return out[:, :, None]


@DATASETS.register("moving-digits")
def load_moving_digits(cfg) -> RawData:
    """scikit-learn's digits moving over ``data.image_size`` canvases, ``data.frames`` frames per clip."""
    from sklearn.datasets import load_digits

    size, frames = int(cfg.image_size), int(cfg.frames)
    if size < 4:
        raise UserError("data.image_size", size, "an integer >= 4 (the canvas side of moving-digits)")
    if frames < 2:
        raise UserError("data.frames", frames, "an integer >= 2 (frames per clip)")
    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
    digits = _resize(x, size // 2)[:, 0]
    rng = np.random.default_rng(int(cfg.seed) + 7)
    corners = trajectories(len(digits), frames, size - digits.shape[-1], size / 16.0, rng)
    return RawData(render(digits, corners, size), d.target.astype(np.int64), class_names=[str(i) for i in range(10)])
