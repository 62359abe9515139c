"""Video objectives: clip-rotation, arrow-of-time, temporal-order. Inputs and labels by hand, no label
read, image/video refusals, and a tiny S3D memorizing each task on a few fixed moving-digit clips."""

from __future__ import annotations

import time

import pytest
import torch
from unnas.pretext.rotation import rotate_batch
from unnas.pretext.video import reverse_clips, shuffle_clips, shuffle_orders

from unnas import config
from unnas.errors import UserError
from unnas.objectives.base import DataInfo, build_objective
from unnas.spec import ArchSpec, build

VIDEO = ("clip-rotation", "arrow-of-time", "temporal-order")
TINY = {"width": 0.0625, "stem": "small", "depths": [1, 1, 1], "variant": "i3d"}


def _clips(n: int = 16, frames: int = 8) -> torch.Tensor:
    from unnas.data.video import load_moving_digits

    cfg = config.load(overrides=[f"data.frames={frames}"]).data
    return torch.from_numpy(load_moving_digits(cfg).train_images[:n])


def _info(clips: torch.Tensor) -> DataInfo:
    x = clips.float() / 255
    return DataInfo(clips.shape[2], 10, tuple(clips.shape[-2:]), tuple(x.mean(dim=(0, 1, 3, 4)).tolist()),
                    tuple(x.std(dim=(0, 1, 3, 4)).tolist()), frames=clips.shape[1])


def _numbered(b: int = 2, t: int = 5) -> torch.Tensor:
    """Clips whose frame ``f`` of clip ``i`` is filled with ``10 i + f``: ``(b, t, 1, 2, 2)``."""
    v = 10 * torch.arange(b)[:, None] + torch.arange(t)[None]
    return v.view(b, t, 1, 1, 1).expand(b, t, 1, 2, 2).float()


def test_reverse_clips_by_hand():
    out, labels = reverse_clips(_numbered())
    assert out.shape == (4, 5, 1, 2, 2) and labels.tolist() == [0, 0, 1, 1]
    assert out[:, :, 0, 0, 0].tolist() == [[0, 1, 2, 3, 4], [10, 11, 12, 13, 14], [4, 3, 2, 1, 0], [14, 13, 12, 11, 10]]


def test_shuffle_orders_are_neither_ordered_nor_reversed():
    g = torch.Generator().manual_seed(0)
    orders = shuffle_orders(5000, 3, g)  # 3 frames: 1/3 of the draws hit the identity or the reversal
    assert (orders.sort(1).values == torch.arange(3)).all()  # permutations
    ident = torch.arange(3)
    assert not ((orders == ident).all(1) | (orders == ident.flip(0)).all(1)).any()
    assert len({tuple(o) for o in orders.tolist()}) == 4  # all 3! - 2 other orders occur
    seeded = lambda: shuffle_orders(7, 6, torch.Generator().manual_seed(1))  # noqa: E731
    assert torch.equal(seeded(), seeded())
    assert shuffle_orders(3, 2, g).tolist() == [[1, 0]] * 3  # two frames: the only other order


def test_shuffle_clips_by_hand():
    x = _numbered()
    out, labels, orders = shuffle_clips(x, torch.Generator().manual_seed(0))
    assert out.shape == (4, 5, 1, 2, 2) and labels.tolist() == [0, 0, 1, 1] and torch.equal(out[:2], x)
    for i in range(2):
        assert out[2 + i, :, 0, 0, 0].tolist() == [10 * i + int(f) for f in orders[i]]


def test_clip_rotation_turns_every_frame_alike():
    x = torch.arange(2 * 3 * 4).float().view(1, 2, 1, 3, 4)[..., :3]  # one clip, two 3x3 frames
    x = x.contiguous()
    out, labels = rotate_batch(x)
    assert out.shape == (4, 2, 1, 3, 3) and labels.tolist() == [0, 1, 2, 3]
    for k in range(4):
        for f in range(2):
            assert torch.equal(out[k, f, 0], torch.rot90(x[0, f, 0], k))
    # a quarter turn by hand: [[a, b], [c, d]] -> [[b, d], [a, c]] (counter-clockwise)
    assert torch.rot90(torch.tensor([[1, 2], [3, 4]]), 1).tolist() == [[2, 4], [1, 3]]


@pytest.mark.parametrize("name,n_pred,classes", [("clip-rotation", 4, 4), ("arrow-of-time", 2, 2),
                                                 ("temporal-order", 2, 2)])
def test_forward_shapes_and_no_label_read(name, n_pred, classes):
    clips = _clips(4)
    torch.manual_seed(0)
    obj = build_objective(name, build(ArchSpec("s3d", TINY), 1), _info(clips)).train()
    assert not obj.uses_labels
    a = obj(clips, None, torch.Generator().manual_seed(0))
    b = obj(clips, torch.randperm(4), torch.Generator().manual_seed(0))  # labels, if read, would change it
    assert int(a["n"]) == n_pred * 4 and obj.head.out_features == classes
    assert torch.equal(a["loss"], b["loss"]) and 0 <= float(a["acc"]) <= 1
    assert obj.train_input(clips, torch.Generator().manual_seed(0)).shape == (n_pred * 4, 8, 1, 16, 16)
    assert obj.features(clips).shape == (4, obj.backbone.num_features)


def test_image_and_video_objectives_refuse_the_other_kind():
    clips = _clips(2)
    info = _info(clips)
    for name in ("rotation", "jigsaw", "colorization", "moco"):
        with pytest.raises(UserError, match=f"{name} works on image data, and this dataset holds video clips of 8 frames"):
            build_objective(name, build(ArchSpec("s3d", TINY), 1), info)
    image_info = DataInfo(1, 10, (16, 16), (0.5,), (0.25,))
    for name in (*VIDEO, "clip-moco"):
        with pytest.raises(UserError, match=f"{name} works on video data, and this dataset holds images") as e:
            build_objective(name, build(ArchSpec("resnet", {"depths": [1], "width": 8}), 1), image_info)
        allowed = str(e.value).split("allowed: ")[1].split(", ")
        assert "rotation" in allowed and "supervised" in allowed and not set(VIDEO) & set(allowed)


def _overfit(name: str, clips: torch.Tensor, steps: int, lr: float) -> tuple[float, float]:
    torch.manual_seed(0)
    obj = build_objective(name, build(ArchSpec("s3d", TINY), 1), _info(clips)).train()
    opt = torch.optim.Adam(obj.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        out = obj(clips, None, torch.Generator().manual_seed(0))
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    return losses[0], min(losses[-5:])


@pytest.mark.parametrize("name", VIDEO)
def test_tiny_s3d_memorizes_each_task_on_fixed_clips(name):
    t0 = time.perf_counter()
    first, last = _overfit(name, _clips(8), 40, 0.02)
    print(f"\n{name}: loss {first:.3f} -> {last:.3f} ({100 * (1 - last / first):.0f}% lower) "
          f"in {time.perf_counter() - t0:.1f}s")
    assert last < 0.2 * first
