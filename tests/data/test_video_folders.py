"""torchvision's UCF-101 / HMDB-51 / Kinetics folder formats, checked on tiny videos written here
(lossless rawvideo AVI, so every decoded pixel is known; one lossy MPEG-4 file in an .mp4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unnas import config
from unnas.data import load_dataset
from unnas.errors import UserError

av = pytest.importorskip("av")


def _cfg(**data):
    return config.load(overrides=[f"data.{k}={v}" for k, v in data.items()]).data


def frame_value(video: int, frame: int) -> int:
    return (video * 40 + frame * 3) % 256


def write_video(path, video: int, frames: int, size=(12, 16), fps: int = 10, codec: str = "rawvideo") -> None:
    """A video whose frame ``t`` is flat grey ``frame_value(video, t)`` (lossless with rawvideo)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.height, s.width = size
        s.pix_fmt = "rgb24" if codec == "rawvideo" else "yuv420p"
        for t in range(frames):
            img = np.full((*size, 3), frame_value(video, t), np.uint8)
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)


def ucf_tree(tmp_path):
    """Two classes x three videos of 12 frames; fold 1 puts videos 0, 1 of each class in train."""
    root, ann = tmp_path / "ucf", tmp_path / "ann"
    ann.mkdir()
    train, test = [], []
    vid = 0
    for cls in ("ApplyLipstick", "Biking"):
        for g in range(3):
            name = f"{cls}/v_{cls}_g0{g + 1}_c01.avi"
            write_video(root / name, vid, 12)
            (train if g < 2 else test).append((name, vid))
            vid += 1
    (ann / "trainlist01.txt").write_text("".join(f"{n} {1 + (v >= 3)}\n" for n, v in train))
    (ann / "testlist01.txt").write_text("".join(f"{n}\n" for n, _ in test))
    return root, ann, train, test


def test_ucf101_splits_labels_and_the_middle_clip(tmp_path, tmp_cache):
    root, ann, train, test = ucf_tree(tmp_path)
    d = load_dataset(_cfg(name="ucf101", root=root, annotations=ann, frames=4, image_size=8, val_fraction=0))
    assert d.class_names == ["ApplyLipstick", "Biking"] and d.frames == 4 and d.channels == 3
    assert d.train.images.shape == (4, 4, 3, 8, 8) and d.test.images.shape == (2, 4, 3, 8, 8)
    # clips of 4 frames, 4 apart: [0-3], [4-7], [8-11]; the middle one is frames 4..7
    for split, vids in ((d.train, train), (d.test, test)):
        got = sorted((int(y), split.images[i, :, :, 0, 0].tolist()) for i, y in enumerate(split.labels))
        want = sorted((int(v >= 3), [[frame_value(v, t)] * 3 for t in range(4, 8)]) for _, v in vids)
        assert got == want


def test_video_folder_is_decoded_once_then_cached(tmp_path, tmp_cache, monkeypatch):
    import unnas.data.video_folders as vf

    root, ann, _, _ = ucf_tree(tmp_path)
    cfg = _cfg(name="ucf101", root=root, annotations=ann, frames=4, image_size=8)
    first = load_dataset(cfg)
    assert list((tmp_cache / "video").glob("ucf101-*.npz"))

    def fail(*a, **k):
        raise AssertionError("decoded again")

    monkeypatch.setattr(vf, "decode_clip", fail)
    monkeypatch.setattr(vf, "probe", fail)
    again = load_dataset(cfg)
    assert torch.equal(first.train.images, again.train.images) and torch.equal(first.test.labels, again.test.labels)
    with pytest.raises(AssertionError, match="decoded again"):  # other options: decoded anew
        load_dataset(_cfg(name="ucf101", root=root, annotations=ann, frames=3, image_size=8))


def test_hmdb51_split_tags(tmp_path, tmp_cache):
    root, ann = tmp_path / "hmdb", tmp_path / "splits"
    ann.mkdir()
    for c, cls in enumerate(("brush_hair", "cartwheel")):
        lines = []
        for v in range(3):
            name = f"{cls}_{v}.avi"
            write_video(root / cls / name, 3 * c + v, 8)
            lines.append(f"{name} {(1, 2, 0)[v]}\n")  # one train, one test, one unused
        (ann / f"{cls}_test_split1.txt").write_text("".join(lines))
    d = load_dataset(_cfg(name="hmdb51", root=root, annotations=ann, frames=8, image_size=8, val_fraction=0))
    assert len(d.train) == 2 and len(d.test) == 2
    assert sorted(int(v) for v in d.train.images[:, 0, 0, 0, 0]) == [frame_value(0, 0), frame_value(3, 0)]
    assert sorted(int(v) for v in d.test.images[:, 0, 0, 0, 0]) == [frame_value(1, 0), frame_value(4, 0)]


def test_kinetics_train_val_mp4_and_frame_rate(tmp_path, tmp_cache):
    root = tmp_path / "kinetics"
    for split, vids in (("train", (0, 1)), ("val", (2,))):
        for v in vids:
            cls = ("abseiling", "zumba")[v % 2]
            write_video(root / split / cls / f"{v}.avi", v, 12, fps=10)
    write_video(root / "train" / "zumba" / "3.mp4", 3, 12, fps=10, codec="mpeg4")  # lossy: flat frames survive
    # 5 frames per second from 10: every second frame; clips of 3 -> [0,2,4], [6,8,10]; middle = the second
    d = load_dataset(_cfg(name="kinetics", root=root, frames=3, frame_rate=5, image_size=8, val_fraction=0))
    assert d.class_names == ["abseiling", "zumba"] and len(d.train) == 3 and len(d.test) == 1
    for split in (d.train, d.test):
        for clip in split.images:
            v = next(v for v in range(4) if abs(int(clip[0, 0, 0, 0]) - frame_value(v, 6)) <= 2)
            assert (clip[:, 0, 0, 0].int() - torch.tensor([frame_value(v, t) for t in (6, 8, 10)])).abs().max() <= 2


def test_resize_keeps_the_centre_square():
    from unnas.data.video_folders import square_frames

    x = np.zeros((1, 4, 8, 3), np.uint8)
    x[:, :, 2:6] = 200  # the centre 4 x 4 of a 4 x 8 frame
    out = square_frames(x, 4)
    assert out.shape == (1, 3, 4, 4) and (out == 200).all()


def test_video_folder_errors_are_one_line(tmp_path, tmp_cache):
    root, ann, _, _ = ucf_tree(tmp_path)
    with pytest.raises(UserError, match="data.annotations"):
        load_dataset(_cfg(name="ucf101", root=root, frames=4))
    with pytest.raises(UserError, match="data.root"):
        load_dataset(_cfg(name="kinetics", root=tmp_path / "missing", frames=4))
    with pytest.warns(UserWarning, match="shorter than a clip"), pytest.raises(UserError, match="no clip"):
        load_dataset(_cfg(name="ucf101", root=root, annotations=ann, frames=13))
    (root / "Biking" / "v_Biking_g01_c01.avi").write_bytes(b"not a video")
    with pytest.raises(UserError, match="cannot read"):
        load_dataset(_cfg(name="ucf101", root=root, annotations=ann, frames=4))
