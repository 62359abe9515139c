import math
import os

import pytest
import torch
from torch import nn

from unnas.config import DataConfig, TrainConfig
from unnas.data import load_dataset
from unnas.engine import (
    JobTimeout,
    apply_runtime,
    cosine_lambda,
    evaluate_objective,
    latest_checkpoint,
    load_checkpoint,
    precise_bn,
    restore_training_state,
    rng_state,
    save_atomic,
    train,
    training_state,
)
from unnas.errors import DivergedError, UserError
from unnas.objectives import DataInfo, build_objective
from unnas.spec import ArchSpec, build

TINY = ArchSpec("resnet", {"depths": [1, 1], "width": 8}, 0)


@pytest.fixture(scope="module")
def data():
    return load_dataset(DataConfig(name="fake", image_size=8, subset_per_class=8))


def make(data, name="supervised", seed=0):
    torch.manual_seed(seed)
    return build_objective(name, build(TINY, data.channels), DataInfo.of(data))


class _Stop(Exception):
    pass


def _crash_at(n: int):
    """A progress callback that interrupts training at step ``n``."""
    def crash(step, total, info):
        if step == n:
            raise _Stop

    return crash


def cfg(**kw):
    base = dict(epochs=3, batch_size=16, lr=0.05, precise_bn=32, channels_last=False)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("name", ["supervised", "rotation"])
def test_same_seed_same_loss_curve(data, name):
    a = train(make(data, name), data.train, cfg(), seed=1)
    b = train(make(data, name), data.train, cfg(), seed=1)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    c = train(make(data, name), data.train, cfg(), seed=2)
    assert [h["loss"] for h in a.history] != [h["loss"] for h in c.history]


def test_resume_after_interruption_equals_uninterrupted(data, tmp_path):
    ref = make(data)
    train(ref, data.train, cfg(), seed=3, checkpoint_dir=tmp_path / "a")

    class Stop(Exception):
        pass

    def crash(step, total, info):
        if step == 7:  # in the second epoch (5 steps per epoch)
            raise Stop

    with pytest.raises(Stop):
        train(make(data), data.train, cfg(), seed=3, checkpoint_dir=tmp_path / "b", progress=crash)
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["epoch_1.pt"]
    torch.manual_seed(999)  # global RNG disturbed between the runs: restored from the checkpoint
    resumed = make(data, seed=5)  # different init: overwritten by the checkpoint
    res = train(resumed, data.train, cfg(), seed=3, checkpoint_dir=tmp_path / "b")
    assert res.resumed_from_epoch == 1
    for (k, v), (k2, v2) in zip(ref.state_dict().items(), resumed.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k


def test_corrupt_newest_checkpoint_falls_back(data, tmp_path):
    train(make(data), data.train, cfg(epochs=2), seed=0, checkpoint_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_1.pt", "epoch_2.pt"]
    (tmp_path / "epoch_2.pt").write_bytes(b"truncated")
    messages = []
    state = latest_checkpoint(tmp_path, messages.append)
    assert state["epoch"] == 1 and "epoch_2.pt" in messages[0]


def test_steps_budget_and_lr_schedule(data):
    res = train(make(data), data.train, cfg(epochs=0, steps=7, warmup_epochs=0.2), seed=0)
    assert res.steps == 7 and res.history[-1]["lr"] == pytest.approx(0.0)
    f = cosine_lambda(total=10, warmup=2)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == 1.0 and f(6) == pytest.approx(0.5) and f(10) == pytest.approx(0.0)
    assert f(4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 8)))


def test_nan_loss_raises_diverged(data):
    with pytest.raises(DivergedError) as e:
        train(make(data), data.train, cfg(lr=1e12, epochs=2), seed=0)
    assert e.value.step >= 0


def test_time_limit(data):
    with pytest.raises(JobTimeout):
        train(make(data), data.train, cfg(time_limit=1e-9), seed=0)


def test_bad_budget_is_user_error(data):
    with pytest.raises(UserError, match="train.epochs"):
        train(make(data), data.train, cfg(epochs=-1), seed=0)


class BNProbe(nn.Module):
    """A backbone that is one BN layer on the input: its batch statistics can be computed by hand."""

    has_spatial = True
    num_features = 3

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(3)

    def pooled(self, x):
        return self.bn(x).mean(dim=(2, 3))


class BNProbeObjective(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = BNProbe()

    def train_input(self, images, generator):
        return images.float()


def test_precise_bn_is_the_exact_mean_over_samples(data):
    obj = BNProbeObjective()
    precise_bn(obj, data.train, num_samples=len(data.train), batch_size=16, generator=torch.Generator(),
               device=torch.device("cpu"))
    x = data.train.images.float()
    assert torch.allclose(obj.backbone.bn.running_mean, x.mean(dim=(0, 2, 3)), atol=1e-4)
    # running_var: average of the per-batch unbiased variances (all batches have the same size)
    per_batch = torch.stack([x[idx].var(dim=(0, 2, 3), unbiased=False) * (16 * 64) / (16 * 64 - 1)
                             for idx in torch.arange(len(x)).split(16)])
    assert obj.backbone.bn.running_var.shape == (3,)
    assert torch.allclose(obj.backbone.bn.running_var.sort().values, per_batch.mean(0).sort().values, rtol=1e-3)


def test_evaluate_and_checkpoint_is_safe_to_load(data, tmp_path):
    obj = make(data)
    train(obj, data.train, cfg(epochs=1), seed=0, checkpoint_dir=tmp_path, config={"a": 1})
    state = load_checkpoint(tmp_path / "epoch_1.pt")
    assert state["config"] == {"a": 1} and state["epoch"] == 1
    out = evaluate_objective(obj, data.test, batch_size=32)
    assert out["n"] == len(data.test) and 0 <= out["acc"] <= 1


def test_precise_bn_weights_a_short_last_batch_by_its_samples(data):
    n, batch = 50, 16  # batches of 16, 16, 16 and 2 samples
    obj = BNProbeObjective()
    precise_bn(obj, data.train, num_samples=n, batch_size=batch, generator=torch.Generator().manual_seed(4),
               device=torch.device("cpu"))
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(4))[:n]
    x = data.train.images[idx].double()
    bn = obj.backbone.bn
    # the mean over all 50 samples, whatever the batch sizes
    torch.testing.assert_close(bn.running_mean.double(), x.mean(dim=(0, 2, 3)), rtol=1e-6, atol=1e-4)
    # the variance BN normalizes with in training (each batch's unbiased variance), weighted by samples
    parts = x.split(batch)
    want = sum(len(p) * p.var(dim=(0, 2, 3), unbiased=True) for p in parts) / n
    torch.testing.assert_close(bn.running_var.double(), want, rtol=1e-5, atol=1e-3)


# ------------------------------------------------------------------ CUDA state in checkpoints
def test_checkpoint_round_trips_the_grad_scaler_and_the_cuda_rng_state(tmp_path, monkeypatch):
    p = nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10, growth_interval=5)
    for bad in (False, True, False):  # a skipped step halves the scale; finite steps count towards growth
        opt.zero_grad()
        scaler.scale((p * (float("inf") if bad else 2.0)).sum()).backward()
        scaler.step(opt)
        scaler.update()
    assert scaler.state_dict()["scale"] == 2.0 ** 9 and scaler.state_dict()["_growth_tracker"] == 1
    # a CUDA device on a machine without one: the CUDA RNG calls are stand-ins
    fake = torch.arange(16, dtype=torch.uint8)
    restored = {}
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": fake.clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": restored.update(state=state,
                                                                                                   device=device))
    cuda = torch.device("cuda", 0)
    gen = torch.Generator().manual_seed(1)
    torch.rand(3, generator=gen)
    save_atomic(training_state({"epoch": 1}, scaler, [rng_state(gen, gen, cuda)]), tmp_path / "c.pt")
    state = load_checkpoint(tmp_path / "c.pt")  # weights_only: plain values and tensors only
    fresh, gen2 = torch.amp.GradScaler("cpu"), torch.Generator().manual_seed(99)
    restore_training_state(state, fresh, 0, 1, gen2, gen2, cuda)
    assert fresh.state_dict() == scaler.state_dict()
    assert torch.equal(restored["state"], fake) and restored["device"] == cuda
    assert torch.equal(gen2.get_state(), gen.get_state())
    with pytest.raises(UserError, match="another number of processes"):
        restore_training_state(state, fresh, 0, 2, gen2, gen2, cuda)


def test_deterministic_mode_fixes_the_cublas_workspace(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    apply_runtime(TrainConfig(deterministic=True))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own setting stays
    apply_runtime(TrainConfig(deterministic=True))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_amp_resume_after_interruption_equals_uninterrupted(data, tmp_path):
    # rotation and a ResNet: every op has a deterministic CUDA kernel (see the README for those without)
    def run(ckpt, progress=None):
        obj = make(data, "rotation")
        train(obj, data.train, cfg(amp=True), seed=3, device="cuda", checkpoint_dir=ckpt, progress=progress)
        return obj

    ref = run(tmp_path / "a")
    with pytest.raises(_Stop):
        run(tmp_path / "b", _crash_at(7))
    assert load_checkpoint(tmp_path / "b" / "epoch_1.pt")["scaler"]["scale"] > 0
    torch.manual_seed(999)
    torch.cuda.manual_seed_all(999)  # both RNGs disturbed between the runs: restored from the checkpoint
    resumed = run(tmp_path / "b")
    for (k, v), (k2, v2) in zip(ref.state_dict().items(), resumed.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k


def test_precise_bn_leaves_out_a_last_batch_of_one_sample(data):
    obj = BNProbeObjective()
    precise_bn(obj, data.train, num_samples=49, batch_size=16, generator=torch.Generator().manual_seed(4),
               device=torch.device("cpu"))
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(4))[:48]
    want = data.train.images[idx].double().mean(dim=(0, 2, 3))
    torch.testing.assert_close(obj.backbone.bn.running_mean.double(), want, rtol=1e-6, atol=1e-4)


def test_step_losses_are_every_steps_loss_and_survive_a_resume(data, tmp_path):
    seen = []
    res = train(make(data, "rotation"), data.train, cfg(epochs=2), seed=4, checkpoint_dir=tmp_path / "a",
                progress=lambda step, total, info: seen.append(info["loss"]))
    assert [len(e) for e in res.step_losses] == [5, 5]  # 80 images, batches of 16
    assert [v for e in res.step_losses for v in e] == seen
    for h, e in zip(res.history, res.step_losses):
        assert h["loss"] == pytest.approx(sum(e) / len(e))
    with pytest.raises(_Stop):
        train(make(data, "rotation"), data.train, cfg(epochs=2), seed=4, checkpoint_dir=tmp_path / "b",
              progress=_crash_at(7))
    resumed = train(make(data, "rotation"), data.train, cfg(epochs=2), seed=4, checkpoint_dir=tmp_path / "b")
    assert resumed.resumed_from_epoch == 1 and resumed.step_losses == res.step_losses
