"""Embedded video data: moving-digits clips."""

from __future__ import annotations

import numpy as np
import torch

from unnas import config
from unnas.data import load_dataset
from unnas.data.video import render, trajectories


def _cfg(**data):
    return config.load(overrides=[f"data.{k}={v}" for k, v in data.items()]).data


# ------------------------------------------------------------------ moving digits
def test_moving_digits_clips_labels_and_seeded_trajectories():
    from sklearn.datasets import load_digits

    d = load_dataset(_cfg(name="moving-digits", frames=6, image_size=16))
    assert d.frames == 6 and d.channels == 1 and d.image_size == (16, 16) and d.num_classes == 10
    assert d.train.images.shape[1:] == (6, 1, 16, 16) and d.train.images.dtype == torch.uint8
    assert len(d.train) + len(d.val) + len(d.test) == 1797
    # every frame shows the whole digit (8x8 at 16 px): a clip's ink is its digit's in every frame,
    # and the clips' ink totals are the 1,797 digits' (with their labels)
    digits = load_digits()
    ink_digits = sorted(zip(np.round(digits.images * (255 / 16)).astype(np.int64).sum(axis=(1, 2)).tolist(),
                            digits.target.tolist()))
    ink_clips = []
    for split in (d.train, d.val, d.test):
        ink = split.images.flatten(2).sum(-1).to(torch.int64)  # (N, T)
        assert (ink == ink[:, :1]).all()
        ink_clips += list(zip(ink[:, 0].tolist(), split.labels.tolist()))
    assert sorted(ink_clips) == ink_digits
    again = load_dataset(_cfg(name="moving-digits", frames=6, image_size=16))
    assert torch.equal(d.train.images, again.train.images) and torch.equal(d.train.labels, again.train.labels)
    other = load_dataset(_cfg(name="moving-digits", frames=6, image_size=16, seed=1))
    assert not torch.equal(d.test.images, other.test.images)  # the seed draws other trajectories


def test_trajectories_slow_down_and_stay_inside():
    rng = np.random.default_rng(0)
    c = trajectories(500, 8, 8, 1.0, rng)
    assert c.min() >= 0 and c.max() <= 8
    pos = np.random.default_rng(0)  # same draws, unrounded: speeds decay by the friction factor
    p0 = pos.uniform(0, 8, size=(500, 2))
    assert np.allclose(np.clip(np.rint(p0), 0, 8), c[:, 0])
    step = np.abs(np.diff(c.astype(float), axis=1)).sum(-1)  # moves per frame (bounces keep the speed)
    assert step[:, :2].mean() > 2 * step[:, -2:].mean()


def test_render_places_the_digit_by_hand():
    digit = np.arange(4, dtype=np.uint8).reshape(1, 2, 2) + 1  # [[1, 2], [3, 4]]
    corners = np.array([[[0, 0], [1, 2]]])
    out = render(digit, corners, 4)
    assert out.shape == (1, 2, 1, 4, 4)
    assert out[0, 0, 0].tolist() == [[1, 2, 0, 0], [3, 4, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert out[0, 1, 0].tolist() == [[0, 0, 0, 0], [0, 0, 1, 2], [0, 0, 3, 4], [0, 0, 0, 0]]


def test_clip_statistics_equal_the_direct_computation():
    from unnas.data.core import clip_statistics

    x = np.random.default_rng(0).integers(0, 256, size=(70, 3, 2, 5, 4), dtype=np.uint8)
    mean, std = clip_statistics(x, chunk=16)
    t = torch.from_numpy(x).double() / 255
    assert np.allclose(mean, t.mean(dim=(0, 1, 3, 4))) and np.allclose(std, t.std(dim=(0, 1, 3, 4)))
