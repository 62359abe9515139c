"""Training precision: selection and its fallback, the float32 parts of a bfloat16 step, the
configuration hash, bit-identical resume in bfloat16."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unnas import config, precision
from unnas.config import DataConfig, TrainConfig
from unnas.data import load_dataset
from unnas.engine import train
from unnas.errors import UserError
from unnas.objectives import DataInfo, build_objective
from unnas.precision import autocast, cpu_bf16_fast, resolve_precision, slow_in_bf16
from unnas.spec import ArchSpec, build

CPU = torch.device("cpu")
TINY = ArchSpec("resnet", {"depths": [1, 1], "width": 8}, 0)


@pytest.fixture(scope="module")
def rgb():
    return load_dataset(DataConfig(name="fake", image_size=8, subset_per_class=8))


def _no_bf16(monkeypatch):
    """A CPU without bfloat16 arithmetic: torch's capability probes answer False."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)


def _bf16(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)


# ------------------------------------------------------------------ selection
def test_auto_is_bfloat16_on_a_cpu_with_bfloat16_arithmetic(monkeypatch):
    _bf16(monkeypatch)
    assert cpu_bf16_fast()
    assert resolve_precision(TrainConfig(), CPU) == "bfloat16"


def test_auto_falls_back_to_float32_on_a_cpu_without_it(monkeypatch):
    _no_bf16(monkeypatch)
    assert not cpu_bf16_fast()
    assert resolve_precision(TrainConfig(), CPU) == "float32"
    cfg = precision.with_precision(config.load(None, ["run.device=cpu"]))
    assert cfg.train.precision == "float32"


def test_amp_false_is_float32_and_explicit_choices_win(monkeypatch):
    _bf16(monkeypatch)
    assert resolve_precision(TrainConfig(amp=False), CPU) == "float32"
    assert resolve_precision(TrainConfig(amp=False, precision="bfloat16"), CPU) == "float32"
    assert resolve_precision(TrainConfig(precision="float32"), CPU) == "float32"
    _no_bf16(monkeypatch)  # asked for explicitly: emulated bfloat16 still runs (slowly)
    assert resolve_precision(TrainConfig(precision="bfloat16"), CPU) == "bfloat16"


def test_cuda_keeps_float16_autocast():
    cuda = torch.device("cuda")  # resolution needs no GPU
    assert resolve_precision(TrainConfig(), cuda) == "float16"
    assert resolve_precision(TrainConfig(precision="bfloat16"), cuda) == "bfloat16"
    assert resolve_precision(TrainConfig(amp=False), cuda) == "float32"


@pytest.mark.parametrize("value", ["fp8", "half", ""])
def test_unknown_precision_is_refused_naming_the_field(value):
    with pytest.raises(UserError, match=r"train\.precision.*allowed: auto, float32, bfloat16, float16"):
        resolve_precision(TrainConfig(precision=value), CPU)


def test_float16_on_a_cpu_is_refused():
    with pytest.raises(UserError, match=r"train\.precision.*float16 autocast is for CUDA"):
        resolve_precision(TrainConfig(precision="float16"), CPU)


def test_precision_is_part_of_the_job_hash(monkeypatch):
    from unnas.runner import config_key

    def key(*o):
        return config_key(config.load(None, ["run.device=cpu", *o]), "rotation")

    _bf16(monkeypatch)
    assert key() == key("train.precision=bfloat16") != key("train.amp=false")
    assert key("train.amp=false") == key("train.precision=float32")  # the same computation, one hash
    _no_bf16(monkeypatch)
    assert key() == key("train.amp=false")  # auto is float32 on this CPU


# ------------------------------------------------------------------ what stays float32
@pytest.mark.parametrize("name", ["rotation", "jigsaw", "colorization", "moco", "supervised"])
def test_bfloat16_step_keeps_float32_weights_loss_and_statistics(rgb, name):
    torch.manual_seed(0)
    obj = build_objective(name, build(TINY, 1 if name == "colorization" else 3), DataInfo.of(rgb)).train()
    labels = rgb.train.labels[:16] if obj.uses_labels else None
    with autocast(obj, CPU, "bfloat16"):
        out = obj(rgb.train.images[:16], labels, torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
    for n, p in obj.named_parameters():
        assert p.dtype == torch.float32, n
        assert p.grad is None or p.grad.dtype == torch.float32, n
    for n, b in obj.named_buffers():
        assert b.dtype in (torch.float32, torch.int64, torch.long), n


def test_engine_trains_with_float32_master_weights_and_optimizer(rgb):
    torch.manual_seed(0)
    obj = build_objective("rotation", build(TINY, 3), DataInfo.of(rgb))
    cfg = TrainConfig(epochs=1, batch_size=16, precise_bn=0, channels_last=True, precision="bfloat16")
    res = train(obj, rgb.train, cfg, seed=0)
    assert res.precision == "bfloat16"
    assert all(p.dtype == torch.float32 for p in obj.parameters())
    bn = next(m for m in obj.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn.running_mean.dtype == bn.running_var.dtype == torch.float32
    assert int(bn.num_batches_tracked) == res.steps


def test_colorization_lab_maths_stays_float32_under_autocast(rgb):
    torch.manual_seed(0)
    obj = build_objective("colorization", build(TINY, 1), DataInfo.of(rgb)).eval()
    images = rgb.train.images[:8]
    x32, t32 = obj.prepare(images)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x16, t16 = obj.prepare(images)
        e16 = obj.eval_input(images)
        raw = torch.einsum("ij,bjhw->bihw", torch.eye(3), images.float())  # what autocast does unguarded
    assert raw.dtype == torch.bfloat16  # the guard is needed
    assert x16.dtype == e16.dtype == torch.float32
    assert torch.equal(x16, x32) and torch.equal(e16, x32) and torch.equal(t16, t32)


def test_moco_embeddings_and_logits_stay_float32_under_autocast():
    from unnas.moco.encoder import embed, projection_head
    from unnas.moco.loss import info_nce_logits

    g = torch.Generator().manual_seed(0)
    q = nn.functional.normalize(torch.randn(8, 16, generator=g), dim=1)
    k = nn.functional.normalize(torch.randn(8, 16, generator=g), dim=1)
    negs = nn.functional.normalize(torch.randn(64, 16, generator=g), dim=1)
    ref = info_nce_logits(q.double(), k.double(), negs.double(), 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = info_nce_logits(q, k, negs, 0.1)
        unguarded = (q @ negs.t()) / 0.1
    assert unguarded.dtype == torch.bfloat16 and logits.dtype == torch.float32
    assert (logits.double() - ref).abs().max() < 1e-5  # float32 accuracy, not bfloat16's ~1e-2
    assert (unguarded.double() - ref[:, 1:]).abs().max() > 1e-3

    class Pool(nn.Module):  # a backbone whose pooled features are the input
        def pooled(self, x):
            return x

    head = projection_head(16, 8)
    x = torch.randn(4, 16, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = embed(Pool(), head, x)
    assert z.dtype == torch.float32
    assert torch.allclose(z, nn.functional.normalize(head(x), dim=1), atol=1e-6)


# ------------------------------------------------------------------ layers kept in float32
def test_grouped_convolutions_bfloat16_is_slow_for_run_float32_under_cpu_autocast():
    dw2 = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
    dil = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8)
    dw5 = nn.Conv2d(8, 8, 5, padding=2, groups=8)
    g2 = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=2)
    g5 = nn.Conv2d(8, 8, 5, padding=2, groups=2)  # grouped, not depthwise, stride 1: bfloat16 is fine
    dw3, dense2 = nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 8, 3, stride=2, padding=1)
    big, tiny = torch.zeros(1, 8, 8, 8), torch.zeros(1, 8, 4, 4)
    assert [slow_in_bf16(m, big) for m in (dw2, dil, dw5, g2, g5, dw3, dense2)] == [True] * 4 + [False] * 3
    assert slow_in_bf16(dw3, tiny) and slow_in_bf16(g5, tiny) and not slow_in_bf16(dense2, tiny)  # 4 px: slow
    assert not slow_in_bf16(nn.Linear(8, 8), big)
    model = nn.Sequential(dense2, dw2, dw3, dw5)
    x = torch.randn(2, 8, 32, 32)
    with autocast(model, CPU, "bfloat16"):
        a = dense2(x)  # 16 px
        b = dw2(a)  # stride 2: float32
        c = dw3(b)  # 3x3, 8 px: bfloat16
        d = dw3(torch.randn(2, 8, 4, 4))  # the same layer on 4 px: float32
        e = dw5(c)  # 5x5: float32
    assert [t.dtype for t in (a, b, c, d, e)] == [torch.bfloat16, torch.float32, torch.bfloat16, torch.float32,
                                                   torch.float32]
    assert "forward" not in dw2.__dict__  # restored after the block
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert dw2(a).dtype == torch.bfloat16
    x.requires_grad_(True)
    with autocast(model, CPU, "bfloat16"):
        model(x).float().sum().backward()  # backward follows what forward ran
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_3d_convolutions_run_float32_under_cpu_bfloat16_autocast():
    conv3, conv2 = nn.Conv3d(2, 4, (3, 1, 1), padding=(1, 0, 0)), nn.Conv2d(2, 4, 3, padding=1)
    model = nn.Sequential(conv3)
    assert slow_in_bf16(conv3) and slow_in_bf16(conv3, torch.zeros(1, 2, 4, 8, 8))
    with autocast(model, CPU, "bfloat16"):
        y3 = conv3(torch.randn(2, 2, 4, 8, 8))
        y2 = conv2(torch.randn(2, 2, 8, 8))
    assert y3.dtype == torch.float32 and y2.dtype == torch.bfloat16
    assert "forward" not in conv3.__dict__


# ------------------------------------------------------------------ determinism and resume
def _cfg(**kw):
    return TrainConfig(**{**dict(epochs=3, batch_size=16, lr=0.05, precise_bn=32, channels_last=True,
                                 precision="bfloat16"), **kw})


def _make(data, name="rotation", seed=0):
    torch.manual_seed(seed)
    return build_objective(name, build(TINY, data.channels), DataInfo.of(data))


def test_bfloat16_training_is_deterministic_and_differs_from_float32(rgb):
    a = train(_make(rgb), rgb.train, _cfg(), seed=1)
    b = train(_make(rgb), rgb.train, _cfg(), seed=1)
    f = train(_make(rgb), rgb.train, _cfg(precision="float32"), seed=1)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert [h["loss"] for h in a.history] != [h["loss"] for h in f.history]


@pytest.mark.parametrize("name", ["rotation", "moco"])
def test_bfloat16_resume_is_bit_identical(rgb, tmp_path, name):
    ref = _make(rgb, name)
    train(ref, rgb.train, _cfg(), seed=3, checkpoint_dir=tmp_path / "a")

    class Stop(Exception):
        pass

    def crash(step, total, info):
        if step == 7:  # second epoch (5 steps per epoch)
            raise Stop

    with pytest.raises(Stop):
        train(_make(rgb, name), rgb.train, _cfg(), seed=3, checkpoint_dir=tmp_path / "b", progress=crash)
    torch.manual_seed(999)
    resumed = _make(rgb, name, seed=5)
    res = train(resumed, rgb.train, _cfg(), seed=3, checkpoint_dir=tmp_path / "b")
    assert res.resumed_from_epoch == 1 and res.precision == "bfloat16"
    for (k, v), (k2, v2) in zip(ref.state_dict().items(), resumed.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
