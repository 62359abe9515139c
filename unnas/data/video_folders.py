"""Video datasets in torchvision's folder formats, decoded once with PyAV and cached as uint8 clips.

* ``ucf101``: ``data.root/<class>/<video>.avi`` plus the official split files
  (``data.annotations/trainlist0{fold}.txt``, ``testlist0{fold}.txt``);
* ``hmdb51``: ``data.root/<class>/<video>.avi`` plus ``data.annotations/<class>_test_split{fold}.txt``
  (tag 1 = train, 2 = test);
* ``kinetics``: ``data.root/train/<class>/<video>.{mp4,avi}`` and ``data.root/val/<class>/...``
  (``test/`` when there is no ``val/``).

The folder layout, the split selection and the clip layout are torchvision's own
(``torchvision.datasets.UCF101`` / ``HMDB51`` / ``Kinetics`` with ``frames_per_clip =
data.frames``, clips ``data.frames`` apart, ``frame_rate = data.frame_rate`` or the recorded
rate); torchvision is handed each video's frame count and rate, measured here with PyAV, so it
decodes nothing itself. Each video contributes one clip, its middle one; videos shorter than a
clip are skipped (with a warning), as torchvision skips them. Frames are decoded with PyAV
(``pip install 'unnas[video]'``), the short side resized to ``data.image_size`` (bilinear, with
antialiasing) and the centre cropped to a square, as uint8 ``(N, T, 3, S, S)``. The result is
cached under ``$UNNAS_CACHE/video`` keyed by the video files (paths, sizes, modification times),
the split files' contents and the options, so a dataset is decoded once.
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from unnas.data.core import RawData
from unnas.data.datasets import cache_dir
from unnas.errors import UserError
from unnas.registry import DATASETS


def _av(name: str):
    try:
        import av
    except ImportError:
        raise UserError("--data", name, None, message="reading video files needs PyAV "
                                                      "(pip install 'unnas[video]', or pip install av)") from None
    return av


def _video_error(av) -> tuple[type[BaseException], ...]:
    return (getattr(av.error, "FFmpegError", OSError), OSError, ValueError, IndexError, StopIteration)


def probe(path: str, av) -> tuple[int, float]:
    """``(frame count, frames per second)`` of a video file's first video stream, without decoding."""
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate or 25
            n = int(stream.frames or 0)
            if n <= 0:
                n = sum(1 for packet in container.demux(stream) if packet.size)
    except _video_error(av) as e:
        raise UserError("data.root", path, "a readable video file", message=f"cannot read ({type(e).__name__})") from None
    return n, float(rate)


def square_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 -> ``(T, 3, size, size)``: short side resized to ``size`` (bilinear,
    antialiased), centre crop."""
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    h, w = t.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    if (nh, nw) != (h, w):
        t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    t = t[:, :, top:top + size, left:left + size]
    return t.round().clamp_(0, 255).to(torch.uint8).numpy()


def decode_clip(path: str, indices: list[int], size: int, av) -> np.ndarray | None:
    """Frames ``indices`` (decode order) of a video as ``(T, 3, size, size)``; None when the file
    holds fewer frames than its header announced."""
    wanted, last, got = set(indices), max(indices), {}
    try:
        with av.open(path) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    got[i] = frame.to_ndarray(format="rgb24")
                if i >= last:
                    break
    except _video_error(av) as e:
        raise UserError("data.root", path, "a readable video file", message=f"corrupt video ({type(e).__name__})") from None
    if len(got) < len(wanted):
        return None
    return square_frames(np.stack([got[i] for i in indices]), size)


def _map(fn: Callable, items: list, what: str) -> list:
    """``fn`` over ``items`` on a few threads (PyAV releases the GIL while decoding), with progress
    on stderr for long lists."""
    out = []
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as ex:
        for i, r in enumerate(ex.map(fn, items), 1):
            out.append(r)
            if len(items) >= 50 and (i % max(1, len(items) // 10) == 0 or i == len(items)):
                print(f"{what}: {i}/{len(items)} videos", file=sys.stderr, flush=True)
    return out


# ------------------------------------------------------------------ torchvision's formats
def _video_list(folder: str, extensions: tuple[str, ...]) -> list[tuple[str, int]]:
    """The ``(path, class index)`` list torchvision's video datasets build for ``folder``."""
    from torchvision.datasets.folder import find_classes, make_dataset

    try:
        _, class_to_idx = find_classes(folder)
    except FileNotFoundError:
        raise UserError("data.root", folder, "a folder with one sub-folder per class", message="no class folders") from None
    return make_dataset(folder, class_to_idx, extensions, is_valid_file=None)


def _annotations(cfg, name: str) -> str:
    if not cfg.annotations or not Path(cfg.annotations).is_dir():
        raise UserError("data.annotations", cfg.annotations or None, f"the folder of {name}'s official split files",
                        message="split files not found")
    if cfg.fold not in (1, 2, 3):
        raise UserError("data.fold", cfg.fold, "1, 2, 3")
    return str(Path(cfg.annotations).expanduser())


def _ucf101(cfg, root: str, meta: dict, train: bool):
    import torchvision

    return torchvision.datasets.UCF101(root, _annotations(cfg, "UCF-101"), cfg.frames, cfg.frames,
                                       int(cfg.frame_rate) or None, cfg.fold, train, _precomputed_metadata=meta,
                                       output_format="TCHW")


def _hmdb51(cfg, root: str, meta: dict, train: bool):
    import torchvision

    return torchvision.datasets.HMDB51(root, _annotations(cfg, "HMDB-51"), cfg.frames, cfg.frames,
                                       int(cfg.frame_rate) or None, cfg.fold, train, _precomputed_metadata=meta,
                                       output_format="TCHW")


def _kinetics_split(root: str, train: bool) -> str:
    if train:
        return "train"
    return "val" if (Path(root) / "val").is_dir() or not (Path(root) / "test").is_dir() else "test"


def _kinetics(cfg, root: str, meta: dict, train: bool):
    import torchvision

    return torchvision.datasets.Kinetics(root, cfg.frames, split=_kinetics_split(root, train),
                                         frame_rate=int(cfg.frame_rate) or None, step_between_clips=cfg.frames,
                                         _precomputed_metadata=meta, output_format="TCHW")


# name -> (torchvision dataset builder, video extensions, folder of a split's videos, split files' name)
FORMATS: dict[str, tuple[Callable, tuple[str, ...], Callable[[str, bool], str], str]] = {
    "ucf101": (_ucf101, ("avi",), lambda root, train: root, "UCF-101"),
    "hmdb51": (_hmdb51, ("avi",), lambda root, train: root, "HMDB-51"),
    "kinetics": (_kinetics, ("avi", "mp4"), lambda root, train: os.path.join(root, _kinetics_split(root, train)), ""),
}


def _cache_key(name: str, cfg, videos: list[str]) -> str:
    h = hashlib.sha1(f"{name}|{cfg.frames}|{cfg.frame_rate}|{cfg.image_size}|{cfg.fold}".encode())
    for p in videos:
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    if cfg.annotations and Path(cfg.annotations).is_dir():
        for f in sorted(Path(cfg.annotations).iterdir()):
            if f.is_file():
                h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def _split(name: str, cfg, root: str, train: bool, probes: dict[str, tuple[int, float]],
           av) -> tuple[np.ndarray, np.ndarray, list[str]]:
    builder, extensions, folder, _ = FORMATS[name]
    samples = _video_list(folder(root, train), extensions)
    paths = [p for p, _ in samples]
    meta = {"video_paths": paths, "video_pts": [torch.arange(probes[p][0]) for p in paths],
            "video_fps": [probes[p][1] for p in paths]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the clip count is reported below, once
        ds = builder(cfg, root, meta, train)
    label = dict(samples)
    chosen = [(p, [int(i) for i in c[len(c) // 2]]) for p, c in zip(ds.video_clips.video_paths, ds.video_clips.clips)
              if len(c)]
    short = len(ds.video_clips.video_paths) - len(chosen)
    clips = _map(lambda it: decode_clip(it[0], it[1], cfg.image_size, av), chosen,
                 f"{name} {'train' if train else 'test'}: decoding")
    keep = [i for i, c in enumerate(clips) if c is not None]
    short += len(chosen) - len(keep)
    if short:
        warnings.warn(f"{name}: {short} video(s) shorter than a clip of {cfg.frames} frames were skipped", stacklevel=2)
    if not keep:
        raise UserError("data.root", root, f"videos of at least {cfg.frames} frames in the "
                        f"{'training' if train else 'test'} split", message="no clip")
    x = np.stack([clips[i] for i in keep])
    y = np.asarray([label[chosen[i][0]] for i in keep], np.int64)
    return x, y, list(ds.classes)


def load_video_folder(name: str, cfg) -> RawData:
    """One of :data:`FORMATS` as uint8 clips, decoded once and cached."""
    if not cfg.root or not Path(cfg.root).expanduser().is_dir():
        raise UserError("data.root", cfg.root or None, f"the folder of a {name} dataset", message="folder not found")
    if cfg.frames < 1:
        raise UserError("data.frames", cfg.frames, "an integer >= 1 (frames per clip)")
    if cfg.image_size < 1:
        raise UserError("data.image_size", cfg.image_size, "a positive integer")
    if cfg.frame_rate < 0:
        raise UserError("data.frame_rate", cfg.frame_rate, "0 (as recorded) or frames per second > 0")
    root = str(Path(cfg.root).expanduser())
    _, extensions, folder, split_files = FORMATS[name]
    if split_files:
        _annotations(cfg, split_files)
    videos = sorted({p for train in (True, False) if Path(folder(root, train)).is_dir()
                     for p, _ in _video_list(folder(root, train), extensions)})
    if not videos:
        raise UserError("data.root", root, f"video files ({', '.join(extensions)}) in class folders", message="no videos")
    cache = cache_dir() / "video" / f"{name}-{_cache_key(name, cfg, videos)}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            return RawData(z["train_x"], z["train_y"], z["test_x"], z["test_y"], [str(c) for c in z["classes"]])
    av = _av(name)
    probes = dict(zip(videos, _map(lambda p: probe(p, av), videos, f"{name}: reading")))
    train_x, train_y, classes = _split(name, cfg, root, True, probes, av)
    test_x, test_y, test_classes = _split(name, cfg, root, False, probes, av)
    missing = sorted(set(test_classes) - set(classes))
    if missing:
        raise UserError("data.root", root, ", ".join(classes), message=f"test class {missing[0]!r} has no training videos")
    index = {c: i for i, c in enumerate(classes)}  # a split folder may lack some classes (Kinetics)
    test_y = np.asarray([index[test_classes[y]] for y in test_y], np.int64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(f".tmp{os.getpid()}.npz")
    np.savez(tmp, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, classes=np.asarray(classes))
    os.replace(tmp, cache)
    return RawData(train_x, train_y, test_x, test_y, classes)


for _name in FORMATS:
    DATASETS.add(_name, lambda cfg, _n=_name: load_video_folder(_n, cfg))
