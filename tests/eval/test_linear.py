import numpy as np
import pytest
import torch
from unnas.eval.linear import fit_linear, linear_probe, probe_objective, top1
from unnas.eval.samplers import class_balanced

from unnas.config import DataConfig
from unnas.data import load_dataset
from unnas.errors import UserError
from unnas.objectives.base import DataInfo, build_objective
from unnas.spec import ArchSpec, build


def blobs(n_per_class=(60, 40, 30), dim=5, seed=0, spread=2.0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(len(n_per_class), dim, generator=g) * spread
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    scale = torch.tensor([1.0, 10.0, 0.1, 3.0, 1.0])[:dim]  # unequal feature scales
    return (means[y] + torch.randn(len(y), dim, generator=g)) * scale + 5.0, y


def test_lbfgs_matches_scikit_learn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    x, y = blobs()
    n, wd = x.shape[0], 1e-2
    # sklearn minimizes C * sum(CE) + ||W||^2 / 2 (intercept not penalized) = our objective * C * n
    sk = LogisticRegression(C=1.0 / (n * wd), tol=1e-10, max_iter=10000).fit(x.double().numpy(), y.numpy())
    ours = fit_linear(x, y, 3, weight_decay=wd, standardize=False, max_iter=1000)
    p_sk = sk.predict_proba(x.double().numpy())
    p_ours = torch.softmax(ours.logits(x).double(), 1).numpy()
    assert np.abs(p_sk - p_ours).max() < 1e-3
    assert np.allclose(ours.weight.numpy(), sk.coef_, atol=2e-3)


def test_standardization_is_folded_into_the_raw_feature_classifier():
    from sklearn.linear_model import LogisticRegression

    x, y = blobs()
    mean, std = x.double().mean(0), x.double().std(0, unbiased=False)
    z = ((x.double() - mean) / std).numpy()
    wd = 1e-2
    sk = LogisticRegression(C=1.0 / (len(y) * wd), tol=1e-10, max_iter=10000).fit(z, y.numpy())
    ours = fit_linear(x, y, 3, weight_decay=wd, standardize=True, max_iter=1000)
    # our classifier takes raw features and must equal sklearn's on standardized ones
    assert np.abs(sk.decision_function(z) - ours.logits(x).double().numpy()
                  - (sk.decision_function(z) - ours.logits(x).double().numpy()).mean(1, keepdims=True)).max() < 1e-2
    assert (ours.predict(x).numpy() == sk.predict(z)).all()


def test_sgd_learns_and_is_reproducible():
    x, y = blobs()
    a = fit_linear(x, y, 3, optimizer="sgd", epochs=20, batch_size=16, generator=torch.Generator().manual_seed(1))
    b = fit_linear(x, y, 3, optimizer="sgd", epochs=20, batch_size=16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
    assert top1(a.logits(x), y) > 0.95
    c = fit_linear(x, y, 3, optimizer="sgd", sampler=class_balanced, epochs=20, batch_size=16,
                   generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a.weight, c.weight)


def test_weight_decay_is_chosen_on_validation():
    # 40 noisy training points in 30 dimensions, only the first one informative: the unregularized
    # fit overfits the noise; a strong decay generalizes better on validation
    g = torch.Generator().manual_seed(0)

    def make(n):
        y = torch.randint(0, 2, (n,), generator=g)
        x = torch.randn(n, 30, generator=g)
        x[:, 0] += (2 * y - 1).float() * 1.0
        return x, y

    (xt, yt), (xv, yv), (xs, ys) = make(40), make(400), make(400)
    res = linear_probe(xt, yt, xv, yv, xs, ys, weight_decays=(1e-6, 1e-1, 1.0), standardize=False)
    curve = dict((wd, acc) for wd, acc in res["val_curve"])
    assert res["weight_decay"] == max(curve, key=lambda w: (curve[w], w))
    assert curve[1e-6] < max(curve.values())
    assert res["val_top1"] == curve[res["weight_decay"]]
    assert res["top1"] == top1(res["classifier"].logits(xs), ys)


def test_linear_probe_input_errors():
    x, y = blobs()
    with pytest.raises(UserError, match="val"):
        linear_probe(x, y, None, None)
    with pytest.raises(UserError, match="optimizer"):
        fit_linear(x, y, 3, optimizer="adam")
    with pytest.raises(ValueError, match="NaN"):
        fit_linear(torch.full((3, 2), float("nan")), torch.tensor([0, 1, 2]), 3)
    res = linear_probe(x, y, None, None, weight_decays=(1e-3,))
    assert res["weight_decay"] == 1e-3 and np.isnan(res["top1"])


def test_probe_leaves_backbone_weights_and_bn_statistics_bit_identical(tmp_path):
    data = load_dataset(DataConfig(name="fake", image_size=8, val_fraction=0.2))
    info = DataInfo.of(data)
    torch.manual_seed(0)
    backbone = build(ArchSpec("resnet", {"depths": [1, 1], "width": 8}, 0), data.channels)
    objective = build_objective("supervised", backbone, info)
    # make the running statistics non-trivial, then leave the network in *training* mode: a probe
    # that forgot eval mode would update the BN statistics
    with torch.no_grad():
        objective.train()
        backbone.pooled(objective.eval_input(data.train.images[:64]))
    before = {k: v.clone() for k, v in objective.state_dict().items()}
    modes = [m.training for m in objective.modules()]
    assert any("running_mean" in k for k in before)
    res = probe_objective(objective, data, cache_dir=tmp_path, weight_decays=(1e-4, 1e-2))
    res2 = probe_objective(objective, data, cache_dir=tmp_path, weight_decays=(1e-4, 1e-2))  # from the cache
    after = objective.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert [m.training for m in objective.modules()] == modes
    assert all(p.grad is None for p in objective.parameters())
    assert 0.0 <= res["top1"] <= 1.0 and res["top1"] == res2["top1"]
    assert len(list(tmp_path.glob("*.pt"))) == 3


def test_feature_cache_is_keyed_by_weights_and_images(tmp_path):
    from unnas.eval.cache import augmented_features, cached_features

    data = load_dataset(DataConfig(name="fake", image_size=8))
    torch.manual_seed(0)
    objective = build_objective("supervised", build(ArchSpec("resnet", {"depths": [1], "width": 4}, 0), 3),
                                DataInfo.of(data))
    imgs = data.test.images[:40]
    a = cached_features(objective, imgs, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    assert torch.equal(cached_features(objective, imgs, cache_dir=tmp_path), a)  # hit
    assert len(list(tmp_path.glob("*.pt"))) == 1
    b = cached_features(objective, imgs[:20], cache_dir=tmp_path)  # other split: new entry
    assert torch.equal(b, a[:20]) and len(list(tmp_path.glob("*.pt"))) == 2
    with torch.no_grad():
        objective.backbone.stem[0].weight.mul_(2.0)  # another checkpoint: new entry, new features
    c = cached_features(objective, imgs, cache_dir=tmp_path)
    assert not torch.equal(c, a) and len(list(tmp_path.glob("*.pt"))) == 3
    v = augmented_features(objective, imgs, views=2, seed=0)
    assert v.shape == (80, a.shape[1]) and not torch.equal(v[:40], v[40:])
    assert torch.equal(v, augmented_features(objective, imgs, views=2, seed=0))
