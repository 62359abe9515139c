import copy
import dataclasses

import pytest
import torch
from unnas.moco.objective import PRESETS, Moco, MocoOptions, queue_length, resolve, split_groups

from unnas import config as config_mod
from unnas.errors import UserError
from unnas.generators.resnet import ResNet
from unnas.objectives.base import DataInfo, build_objective
from unnas.registry import OBJECTIVES


def make(options=None, channels=1, size=8, seed=0, num_train=0):
    torch.manual_seed(seed)
    info = DataInfo(channels, 10, (size, size), (0.5,) * channels, (0.25,) * channels)
    if num_train:
        object.__setattr__(info, "num_train", num_train)
    return build_objective("moco", ResNet([1, 1], 4, channels, None), info, options)


def batch(n=8, channels=1, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)


def test_registered_with_its_options_and_config_section():
    assert OBJECTIVES.get("moco") is Moco and OBJECTIVES.meta("moco")["config"] is MocoOptions
    cfg = config_mod.load(overrides=["moco.version=v2", "moco.momentum=0.9", "moco.queue_size=128"])
    opts = cfg.objectives["moco"]
    assert isinstance(opts, MocoOptions) and opts.version == "v2" and opts.momentum == 0.9
    assert config_mod.from_dict(config_mod.to_dict(cfg)).objectives["moco"] == opts
    with pytest.raises(UserError):
        config_mod.load(overrides=["moco.queue=3"])


def test_presets_fill_defaults_and_explicit_values_win():
    hp = resolve(MocoOptions(), 32)
    assert (hp.queue_size, hp.momentum, hp.temperature, hp.head, hp.symmetric) == (4096, 0.99, 0.1, "linear", False)
    assert hp.views.crop_scale == (0.08, 1.0) and hp.views.blur_p == 0
    v1 = resolve(MocoOptions(version="v1"), 224)
    assert (v1.queue_size, v1.momentum, v1.temperature, v1.head, v1.views.jitter) == (65536, 0.999, 0.07, "linear",
                                                                                        (0.4, 0.4, 0.4, 0.4))
    v2 = resolve(MocoOptions(version="v2"), 224)
    assert (v2.temperature, v2.head, v2.views.blur_p, v2.views.jitter_p, v2.views.crop_scale) == (
        0.2, "mlp", 0.5, 0.8, (0.2, 1.0))
    mine = resolve(MocoOptions(version="v2", temperature=0.5, head="linear", blur_p=0.0, symmetric=True), 224)
    assert (mine.temperature, mine.head, mine.views.blur_p, mine.symmetric, mine.momentum) == (
        0.5, "linear", 0.0, True, 0.999)
    assert resolve(MocoOptions(), 16).views.crop_scale == (0.25, 1.0)  # small images: crops keep 8x8 pixels
    assert set(PRESETS) == {"v1", "v2", "cifar"}


@pytest.mark.parametrize("field,value", [("version", "v3"), ("momentum", 1.0), ("temperature", 0.0), ("head", "deep"),
                                         ("jitter_p", 1.5), ("crop_min_scale", 0.0), ("blur_sigma", [2.0, 1.0]),
                                         ("queue_size", -64), ("dim", 0)])
def test_bad_options_are_user_errors_naming_the_field(field, value):
    with pytest.raises(UserError) as e:
        resolve(MocoOptions(**{field: value}), 16)
    assert f"moco.{field}" in str(e.value)


def test_queue_length_rules():
    assert queue_length(0, 4096, 64) == 512  # training-set size unknown: 8 steps' keys
    assert queue_length(0, 4096, 512) == 4096
    assert queue_length(0, 4096, 64, num_train=1294) == 640  # half the images, a multiple of the batch
    assert queue_length(0, 4096, 512, num_train=50000) == 4096
    assert queue_length(0, 4096, 64, num_train=100) == 64  # at least one batch
    assert queue_length(0, 4096, 100) == 800
    assert queue_length(0, 65536, 256, num_train=1_281_167) == 65536
    assert queue_length(256, 4096, 64, num_train=1294) == 256
    with pytest.raises(UserError, match="multiple"):
        queue_length(100, 4096, 64)
    with pytest.raises(UserError, match="at most the number of training images"):
        queue_length(2048, 4096, 64, num_train=1294)
    from unnas.config import TrainConfig

    info = DataInfo(1, 10, (16, 16), (0.5,), (0.25,))
    object.__setattr__(info, "num_train", 1294)
    train_cfg = TrainConfig(batch_size=64)
    assert Moco.check_run(MocoOptions(symmetric=True), train_cfg, info) == 640  # 647 -> a multiple of 128
    with pytest.raises(UserError, match="multiple"):
        Moco.check_run(MocoOptions(queue_size=192, symmetric=True), train_cfg, info)
    with pytest.raises(UserError, match="moco.bn_splits"):
        Moco.check_run(MocoOptions(bn_splits=5), train_cfg, info)
    assert Moco.check_run(None, TrainConfig(batch_size=512), DataInfo(3, 10, (32, 32), (0.5,) * 3, (0.2,) * 3)) == 4096


def test_split_groups_rule():
    assert [split_groups(0, b) for b in (512, 256, 64, 48, 16, 8)] == [8, 8, 4, 3, 1, 1]
    assert split_groups(2, 64) == 2
    with pytest.raises(UserError, match="moco.bn_splits"):
        split_groups(3, 64)


def test_queue_size_not_a_multiple_of_the_batch_fails_on_the_first_batch():
    obj = make(MocoOptions(queue_size=20)).train()
    with pytest.raises(UserError, match="moco.queue_size"):
        obj(batch(8))


def test_training_step_shapes_queue_and_no_gradient_into_the_key_encoder():
    obj = make(MocoOptions(queue_size=16)).train()
    g = torch.Generator().manual_seed(0)
    key_params = list(obj.key_encoder.parameters())
    assert key_params and not any(p.requires_grad for p in key_params)
    trainable = {id(p) for p in obj.parameters() if p.requires_grad}
    assert trainable.isdisjoint({id(p) for p in key_params})
    out = obj(batch(8), None, g)
    assert set(out) == {"loss", "acc", "n"} and out["acc"].dim() == 0 and int(out["n"]) == 8
    assert obj.queue.size == 16 and int(obj.queue.count) == 8
    out = obj(batch(8, seed=1), None, g)
    out["loss"].backward()
    assert all(p.grad is None for p in key_params)
    assert all(p.grad is not None for p in obj.head.parameters())
    assert int(obj.queue.count) == 16
    torch.testing.assert_close(obj.queue.keys.norm(dim=1), torch.ones(16))


def test_after_step_moves_the_key_encoder_by_the_momentum():
    obj = make(MocoOptions(momentum=0.75))
    k_before = obj.key_encoder["head"].weight.clone()
    with torch.no_grad():
        obj.head.weight.add_(1.0)
    obj.after_step()
    torch.testing.assert_close(obj.key_encoder["head"].weight, 0.75 * k_before + 0.25 * obj.head.weight)


def test_eval_forward_changes_no_state():
    obj = make(MocoOptions(queue_size=16)).train()
    obj(batch(8), None, torch.Generator().manual_seed(0))
    obj.eval()
    before = {k: v.clone() for k, v in obj.state_dict().items()}
    out = obj(batch(5), None, torch.Generator().manual_seed(1))  # a partial batch is fine in eval
    assert int(out["n"]) == 5 and 0 <= float(out["acc"]) <= 1
    after = obj.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_features_are_the_backbones_pooled_eval_features():
    obj = make().eval()
    x = batch(4)
    feats = obj.features(x)
    assert feats.shape == (4, obj.backbone.num_features)
    torch.testing.assert_close(feats, obj.backbone.pooled((x.float() / 255 - 0.5) / 0.25))


def test_symmetric_loss_enqueues_both_views_and_counts_both_predictions():
    obj = make(MocoOptions(queue_size=32, symmetric=True)).train()
    out = obj(batch(8), None, torch.Generator().manual_seed(0))
    assert int(out["n"]) == 16 and int(obj.queue.count) == 16


@pytest.mark.parametrize("version", ["v1", "v2", "cifar"])
def test_every_preset_trains_on_rgb_and_gray(version):
    for channels in (1, 3):
        obj = make(MocoOptions(version=version, queue_size=16), channels=channels).train()
        out = obj(batch(8, channels), None, torch.Generator().manual_seed(0))
        out["loss"].backward()
        assert torch.isfinite(out["loss"])
    if version == "v2":
        assert obj.head[0].out_features == obj.backbone.num_features  # MLP hidden = backbone width


def _steps(obj, opt, gens, seeds):
    losses = []
    for s in seeds:
        out = obj(batch(8, seed=s), None, gens)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        obj.after_step()
        losses.append(out["loss"].item())
    return losses


def test_checkpoint_resumes_exactly():
    opts = MocoOptions(queue_size=16, momentum=0.9)
    a = make(opts).train()
    opt_a = torch.optim.SGD([p for p in a.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    _steps(a, opt_a, g, [1, 2, 3])
    state, opt_state, g_state = copy.deepcopy((a.state_dict(), opt_a.state_dict(), g.get_state()))
    assert {"queue.keys", "queue.ptr", "queue.count", "key_encoder.head.weight"} <= set(state)
    expected = _steps(a, opt_a, g, [4, 5])
    b = make(opts, seed=123).train()  # different initial weights, unallocated queue
    b.load_state_dict(state)
    opt_b = torch.optim.SGD([p for p in b.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    opt_b.load_state_dict(opt_state)
    g.set_state(g_state)
    assert _steps(b, opt_b, g, [4, 5]) == expected
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_engine_trains_moco_and_checks_are_consistent(tmp_path):
    from unnas.config import TrainConfig
    from unnas.data.core import Split
    from unnas.engine import train

    obj = make(MocoOptions(queue_size=16))
    split = Split(batch(32), torch.zeros(32, dtype=torch.long))
    key0 = obj.key_encoder["head"].weight.clone()
    cfg = TrainConfig(steps=4, batch_size=8, precise_bn=16, checkpoint=True)
    res = train(obj, split, cfg, seed=0, checkpoint_dir=tmp_path)
    assert res.steps == 4 and not obj.training
    assert not torch.equal(obj.key_encoder["head"].weight, key0)
    assert int(obj.queue.count) == 16
    assert dataclasses.asdict(obj.options)["queue_size"] == 16


def test_eval_step_is_the_training_computation_without_updates():
    a = make(MocoOptions(queue_size=16)).train()
    a(batch(8), None, torch.Generator().manual_seed(0))
    b = copy.deepcopy(a)
    out_eval = a.eval()(batch(8, seed=3), None, torch.Generator().manual_seed(4))
    out_train = b.train()(batch(8, seed=3), None, torch.Generator().manual_seed(4))
    torch.testing.assert_close(out_eval["loss"], out_train["loss"].detach())
    assert float(out_eval["acc"]) == float(out_train["acc"])
    assert not a.training and int(a.queue.count) == 8 and int(b.queue.count) == 16
