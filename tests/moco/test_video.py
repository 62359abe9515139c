"""clip-moco: two windows of the same clip are the positive pair. Windows and views by hand, one set of
augmentation parameters per window, no label read, and a tiny S3D learning to match windows of fixed clips."""

from __future__ import annotations

import pytest
import torch
from unnas.moco.augment import ViewConfig
from unnas.moco.video import ClipMocoOptions, clip_view, random_starts, take_windows, window_length

from unnas import config
from unnas.errors import UserError
from unnas.objectives.base import DataInfo, build_objective
from unnas.spec import ArchSpec, build

TINY = {"width": 0.0625, "stem": "small", "depths": [1, 1, 1], "variant": "i3d"}
# views without any augmentation: whole-image crop, no jitter, grayscale, blur or flip
PLAIN = dict(crop_min_scale=1.0, jitter_p=0.0, gray_p=0.0, blur_p=0.0, flip_p=0.0, bn_splits=1)


def _numbered(b: int, t: int, size: int = 16) -> torch.Tensor:
    """uint8 clips whose frame ``f`` of clip ``i`` is filled with ``20 i + f``: ``(b, t, 1, size, size)``."""
    v = (20 * torch.arange(b)[:, None] + torch.arange(t)[None]).to(torch.uint8)
    return v.view(b, t, 1, 1, 1).expand(b, t, 1, size, size).contiguous()


def _info(frames: int = 8) -> DataInfo:
    return DataInfo(1, 10, (16, 16), (0.3,), (0.2,), frames=frames)


def test_window_length_rules():
    assert window_length(0, 8) == 4 and window_length(0, 1) == 1 and window_length(8, 8) == 8
    for bad in (-1, 9):
        with pytest.raises(UserError, match="clip-moco.clip_frames"):
            window_length(bad, 8)


def test_windows_by_hand():
    x = _numbered(3, 6)
    w = take_windows(x, torch.tensor([0, 2, 3]), 3)
    assert w[:, :, 0, 0, 0].tolist() == [[0, 1, 2], [22, 23, 24], [43, 44, 45]]
    s = random_starts(1000, 6, 3, torch.Generator().manual_seed(0))
    assert s.min() == 0 and s.max() == 3


def test_clip_view_gives_one_set_of_parameters_per_clip():
    x = torch.rand(6, 1, 3, 16, 16).expand(6, 4, 3, 16, 16).contiguous()  # four equal frames per clip
    cfg = ViewConfig(crop_scale=(0.3, 1.0), jitter_p=1.0, gray_p=0.5, blur_p=0.5, flip_p=0.5)
    v = clip_view(x, cfg, torch.Generator().manual_seed(0))
    assert v.shape == x.shape
    assert all(torch.equal(v[:, t], v[:, 0]) for t in range(4))  # the same augmentation on every frame
    assert not torch.allclose(v[0, 0], x[0, 0])  # and it does augment
    again = clip_view(x, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(v, again)


def _objective(frames: int = 8, **options):
    torch.manual_seed(0)
    cfg = config.load(overrides=[f"clip-moco.{k}={v}" for k, v in options.items()])
    return build_objective("clip-moco", build(ArchSpec("s3d", TINY), 1), _info(frames), cfg.objectives["clip-moco"])


def test_positive_pairs_are_two_windows_of_one_clip():
    obj = _objective(clip_frames=3, **PLAIN)
    x = _numbered(4, 8)
    v1, v2 = obj.views(x, torch.Generator().manual_seed(0))
    assert v1.shape == v2.shape == (4, 3, 1, 16, 16)
    for v in (v1, v2):
        frames = torch.round(v[:, :, 0, 0, 0] * 255).long()
        assert (frames // 20 == torch.arange(4)[:, None]).all()  # from its own clip
        assert (frames.diff(dim=1) == 1).all()  # consecutive frames
    assert obj.eval_input(x).shape == (4, 3, 1, 16, 16)  # the centre window: frames 2, 3, 4
    centre = obj.eval_input(x) * 0.2 + 0.3
    assert torch.allclose(centre[:, :, 0, 0, 0] * 255, (20 * torch.arange(4)[:, None] + torch.tensor([2, 3, 4])).float(),
                          atol=1e-3)


def test_options_section_forward_and_no_label_read():
    assert isinstance(config.load().objectives["clip-moco"], ClipMocoOptions)
    obj = _objective(queue_size=8).train()
    x = _numbered(4, 8)
    a = obj(x, None, torch.Generator().manual_seed(0))
    assert set(a) == {"loss", "acc", "n"} and int(a["n"]) == 4 and int(obj.queue.count) == 4
    obj2 = _objective(queue_size=8).train()
    b = obj2(x, torch.randperm(4), torch.Generator().manual_seed(0))
    assert torch.equal(a["loss"], b["loss"])
    with pytest.raises(UserError, match="clip-moco.clip_frames"):
        _objective(clip_frames=9)


def test_tiny_s3d_learns_to_match_windows_of_fixed_clips():
    """Two fixed sets of 8 clips, alternately: the queue always holds the other set's keys, so each
    query must pick its own clip's window among 8 other videos' (loss falls by more than 80%)."""
    from unnas.data.video import load_moving_digits

    clips = torch.from_numpy(load_moving_digits(config.load().data).train_images[:16])
    obj = _objective(queue_size=8, momentum=0.5, clip_frames=4, **PLAIN).train()
    opt = torch.optim.Adam([p for p in obj.parameters() if p.requires_grad], lr=0.02)
    losses = []
    for step in range(60):
        half = clips[:8] if step % 2 == 0 else clips[8:]
        out = obj(half, None, torch.Generator().manual_seed(step % 2))
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        obj.after_step()
        losses.append(float(out["loss"].detach()))
    first, last = losses[1], min(losses[-6:])  # step 0 has an empty queue (loss 0)
    print(f"\nclip-moco: loss {first:.3f} -> {last:.3f}")
    assert last < 0.2 * first


def test_heldout_score_retrieves_windows_of_clips():
    """The held-out score of a clip-moco job (what every training job computes after training): with
    whole-clip windows and no augmentation the two views of a clip are identical, so each clip's
    second view retrieves its own first view: accuracy 1 (image-only views of clips cannot be drawn)."""
    obj = _objective(queue_size=8, clip_frames=8, **PLAIN)
    score = obj.heldout_score(_Split(_numbered(6, 8)), 4, 0, torch.device("cpu"))
    assert score == 1.0


class _Split:
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)
