import math

import pytest
import torch
from unnas.eval.decoupled import (
    DecoupledOptions,
    FeatureSplits,
    group_accuracy,
    lws,
    lws_logits,
    run_decoupled,
    select_tau,
    shot_groups,
    shot_thresholds,
    tau_normalize,
)
from unnas.eval.linear import LinearClassifier, fit_linear
from unnas.eval.ncm import fit_ncm
from unnas.eval.samplers import instance_balanced

from unnas.data import longtail_counts
from unnas.errors import UserError

S = 1 / math.sqrt(2)


# ------------------------------------------------------------------ NCM
def test_ncm_on_four_hand_made_points():
    # training mean (1, 2); centred points (1,-1), (1,1) | (-1,-1), (-1,1); normalized they average
    # to (S, 0) and (-S, 0), re-normalized to the centroids (1, 0) and (-1, 0)
    x = torch.tensor([[2.0, 1.0], [2.0, 3.0], [0.0, 1.0], [0.0, 3.0]])
    y = torch.tensor([0, 0, 1, 1])
    ncm = fit_ncm(x, y)
    assert ncm.center.tolist() == [1.0, 2.0]
    assert torch.allclose(ncm.centroids, torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64))
    # (3, 4) -> centred (2, 2) -> (S, S): cosines S and -S (not 0.5: the centroids are unit length)
    # (1, 7) -> centred (0, 5) -> (0, 1): cosine 0 with both (not the raw direction of (1, 7))
    # (0.5, 2.2) -> centred (-0.5, 0.2): class 1 with cosine 0.5 / sqrt(0.29)
    q = torch.tensor([[3.0, 4.0], [1.0, 7.0], [0.5, 2.2]])
    s = ncm.scores(q)
    expect = torch.tensor([[S, -S], [0.0, 0.0], [-0.5 / math.sqrt(0.29), 0.5 / math.sqrt(0.29)]], dtype=torch.float64)
    assert torch.allclose(s, expect, atol=1e-12)
    assert ncm.predict(q)[[0, 2]].tolist() == [0, 1]


def test_ncm_ignores_class_sizes_and_never_predicts_empty_classes():
    # one point of class 1 against 100 of class 0: the centroid is what counts, not the count
    x = torch.cat([torch.tensor([[5.0, 0.0]]).repeat(100, 1), torch.tensor([[-5.0, 0.0]])])
    y = torch.tensor([0] * 100 + [1])
    ncm = fit_ncm(x, y, num_classes=3)
    assert torch.isinf(ncm.scores(x)[:, 2]).all()
    assert ncm.predict(torch.tensor([[-4.0, 1.0], [6.0, 0.0]])).tolist() == [1, 0]


# ------------------------------------------------------------------ tau-norm
def test_tau_zero_is_the_raw_classifier_and_tau_one_gives_unit_rows():
    w = torch.tensor([[3.0, 4.0], [0.0, 0.5], [1.0, -1.0]])
    assert torch.equal(tau_normalize(w, 0.0), w)
    u = tau_normalize(w, 1.0)
    assert torch.allclose(u.norm(dim=1), torch.ones(3))
    assert torch.allclose(u[0], torch.tensor([0.6, 0.8]))
    assert torch.allclose(tau_normalize(w, 0.5)[0], w[0] / math.sqrt(5.0))
    assert torch.equal(tau_normalize(torch.zeros(2, 3), 1.0), torch.zeros(2, 3))


def test_tau_norm_method_drops_the_bias():
    # a huge bias for class 0 decides every joint prediction; tau-norm (any tau) ignores it
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    joint = LinearClassifier(w, torch.tensor([100.0, 0.0]))
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.2, 2.0], [3.0, 0.1]])
    y = torch.tensor([1, 0, 1, 0])
    feats = FeatureSplits(x, y, x, y, x, y)
    res = run_decoupled(feats, joint, 2, DecoupledOptions(methods=("joint", "tau_norm"), taus=(0.0,)))
    assert res["methods"]["joint"]["all"] == 0.5
    assert res["methods"]["tau_norm"]["all"] == 1.0 and res["methods"]["tau_norm"]["tau"] == 0.0


def test_select_tau_picks_the_best_validation_tau_smallest_on_ties():
    # class 0 has the big norm; a validation point of class 1 at (1, 1.5) needs the norms equalized
    w = torch.tensor([[4.0, 0.0], [0.0, 1.0]])
    xv = torch.tensor([[1.0, 1.5], [2.0, 0.0]])
    yv = torch.tensor([1, 0])
    tau, curve = select_tau(w, xv, yv)
    # score0 = 4^(1-tau), score1 = 1.5: class 1 wins iff 4^(1-tau) < 1.5 iff tau > 1 - log(1.5)/log(4) = 0.7075
    assert tau == pytest.approx(0.8)
    assert [round(t, 1) for t, _ in curve] == [round(0.1 * i, 1) for i in range(21)]
    assert all(a == 0.5 for t, a in curve if t < 0.7) and all(a == 1.0 for t, a in curve if t > 0.71)


# ------------------------------------------------------------------ LWS
def test_lws_with_unit_scales_equals_joint():
    g = torch.Generator().manual_seed(0)
    w, b, x = torch.randn(5, 7, generator=g), torch.randn(5, generator=g), torch.randn(30, 7, generator=g)
    joint = LinearClassifier(w, b)
    assert torch.equal(lws_logits(w, b, torch.ones(5), x), joint.logits(x))
    # zero LWS epochs leave the scales at 1, so the whole LWS row equals the joint row
    y = torch.randint(0, 5, (30,), generator=g)
    feats = FeatureSplits(x, y, x, y, x, y)
    res = run_decoupled(feats, joint, 5, DecoupledOptions(methods=("joint", "lws"), lws_epochs=0))
    assert res["methods"]["lws"]["scales"] == [1.0] * 5
    for k in ("many", "medium", "few", "all", "val_all"):
        a, b2 = res["methods"]["lws"][k], res["methods"]["joint"][k]
        assert a == b2 or (math.isnan(a) and math.isnan(b2))


def test_lws_raises_the_scale_of_a_suppressed_class():
    # two classes with identical separable features; the classifier's class-1 row is shrunk 10x,
    # so class 1 is under-predicted; class-balanced LWS must learn f_1 > f_0
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(200, 2, generator=g) + torch.tensor([2.0, 0.0]),
                   torch.randn(20, 2, generator=g) + torch.tensor([0.0, 2.0])])
    y = torch.tensor([0] * 200 + [1] * 20)
    w = torch.tensor([[1.0, 0.0], [0.0, 0.1]])
    b = torch.zeros(2)
    f = lws(w, b, x, y, epochs=20, batch_size=32, lr=0.1, generator=torch.Generator().manual_seed(0))
    assert f[1] > 1.5 * f[0]

    def balanced_ce(scales):  # the objective class-balanced sampling estimates
        ce = torch.nn.functional.cross_entropy(lws_logits(w, b, scales, x), y, reduction="none")
        return float((ce[y == 0].mean() + ce[y == 1].mean()) / 2)

    assert balanced_ce(f) < 0.8 * balanced_ce(torch.ones(2))


# ------------------------------------------------------------------ groups
def test_shot_thresholds_paper_and_scaled():
    counts = [1280, 500, 101, 100, 20, 19, 5]
    th = shot_thresholds(counts)
    assert (th["many"], th["few"], th["rule"]) == (100, 20, "paper")
    assert shot_groups(counts, 100, 20) == ["many", "many", "many", "medium", "medium", "few", "few"]
    # CIFAR-10-LT after a 10% validation split: 4500 ... 45; with the paper's thresholds no class
    # is few-shot, so they scale by 4500 / 1280
    c10 = longtail_counts(4500, 10, 100)
    assert c10 == [4500, 2697, 1617, 969, 581, 348, 208, 125, 75, 45]
    th = shot_thresholds(c10)
    assert th["many"] == pytest.approx(100 * 4500 / 1280) and th["few"] == pytest.approx(20 * 4500 / 1280)
    assert shot_groups(c10, th["many"], th["few"]) == ["many"] * 5 + ["medium"] * 4 + ["few"]
    assert shot_thresholds(c10, "paper")["few"] == 20
    assert shot_thresholds(c10, "1000,50") == {"many": 1000.0, "few": 50.0, "rule": "given"}
    with pytest.raises(UserError, match="shot-thresholds"):
        shot_thresholds(c10, "20,100")


def test_group_accuracy_hand_computed():
    groups = ["many", "medium", "few"]
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2])
    pred = torch.tensor([0, 0, 1, 0, 2, 0, 0, 0])
    acc = group_accuracy(pred, labels, groups)
    assert acc == {"many": 1.0, "medium": 0.5, "few": 0.25, "all": 4 / 8}
    acc = group_accuracy(pred, labels, ["many", "many", "many"])
    assert math.isnan(acc["few"]) and acc["many"] == 0.5


# ------------------------------------------------------------------ end to end on synthetic features
def synthetic_lt(counts, n_test, seed, dim=8, spread=1.7):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(len(counts), dim, generator=g) * spread

    def draw(ns):
        y = torch.cat([torch.full((n,), c) for c, n in enumerate(ns)])
        return means[y] + torch.randn(len(y), dim, generator=g), y

    return draw(counts), draw([n_test] * len(counts)), draw([n_test] * len(counts))


def test_stage2_methods_beat_joint_on_few_shot_with_a_biased_joint_classifier():
    counts = [1000, 450, 200, 90, 40, 18, 8, 4]
    (xt, yt), (xv, yv), (xs, ys) = synthetic_lt(counts, 200, seed=0, spread=1.3)
    feats = FeatureSplits(xt, yt, xv, yv, xs, ys)
    g = torch.Generator().manual_seed(0)
    joint = fit_linear(xt, yt, 8, optimizer="sgd", sampler=instance_balanced, epochs=10, weight_decay=5e-4,
                       generator=g)
    res = run_decoupled(feats, joint, 8, DecoupledOptions(crt_epochs=10, lws_epochs=10), seed=0)
    assert res["thresholds"]["rule"] == "paper" and res["group_sizes"] == {"many": 3, "medium": 2, "few": 3}
    m = res["methods"]
    for name in ("ncm", "crt", "tau_norm", "lws"):
        assert m[name]["few"] > m["joint"]["few"] + 0.05, (name, m[name], m["joint"])
        assert m[name]["all"] > m["joint"]["all"], (name, m[name], m["joint"])
    assert m["tau_norm"]["tau"] > 0
    assert m["joint"]["many"] > m["crt"]["many"]  # the usual trade: head accuracy goes down


def test_unknown_method_is_a_user_error():
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 0, 1])
    with pytest.raises(UserError, match="methods"):
        run_decoupled(FeatureSplits(x, y, x, y, x, y), LinearClassifier(torch.zeros(2, 2), torch.zeros(2)), 2,
                      DecoupledOptions(methods=("joint", "focal")))


# ------------------------------------------------------------------ progressive sampling per method
@pytest.mark.parametrize("crt_epochs, lws_epochs", [(8, 2), (2, 8)])
def test_progressive_sampling_gives_each_method_its_own_horizon(crt_epochs, lws_epochs):
    # cRT and LWS with different epoch counts: each moves from instance- to class-balanced over
    # its own epochs, as if it ran alone with progressively_balanced(its epochs)
    from unnas.eval.samplers import progressively_balanced

    counts = [300, 60, 12]
    (xt, yt), (xv, yv), (xs, ys) = synthetic_lt(counts, 30, seed=2, dim=4)
    feats = FeatureSplits(xt, yt, xv, yv, xs, ys)
    joint = fit_linear(xt, yt, 3, standardize=False)
    opts = DecoupledOptions(methods=("crt", "lws"), sampler="progressive", crt_epochs=crt_epochs,
                            lws_epochs=lws_epochs, batch_size=32)
    res = run_decoupled(feats, joint, 3, opts, seed=5)
    f = lws(joint.weight, joint.bias, xt, yt, sampler=progressively_balanced(lws_epochs), epochs=lws_epochs,
            batch_size=32, lr=opts.lws_lr, generator=torch.Generator().manual_seed(5))
    assert res["methods"]["lws"]["scales"] == f.tolist()
    from unnas.eval.decoupled import crt

    clf = crt(xt, yt, 3, sampler=progressively_balanced(crt_epochs), epochs=crt_epochs, batch_size=32,
              lr=opts.crt_lr, weight_decay=opts.crt_weight_decay, generator=torch.Generator().manual_seed(5))
    assert res["methods"]["crt"]["all"] == group_accuracy(clf.predict(xs), ys, res["groups"])["all"]
    assert res["methods"]["crt"]["val_all"] == pytest.approx(float((clf.predict(xv) == yv).double().mean()))
    assert res["methods"]["crt"]["sampler_epochs"] == crt_epochs and res["methods"]["lws"]["sampler_epochs"] == lws_epochs


# ------------------------------------------------------------------ tau-norm of a standardized probe
def test_tau_zero_reproduces_a_probe_fitted_on_non_negative_features():
    # post-ReLU features are non-negative, so the probe's standardization has a large centring
    # term; tau-norm works in the coordinates the probe was fitted in and drops only the learned
    # bias, so tau = 0 gives the joint predictions back
    g = torch.Generator().manual_seed(0)
    means = torch.rand(5, 32, generator=g) * 3

    def draw(n):
        y = torch.arange(5).repeat_interleave(n)
        return torch.relu(means[y] + 0.8 * torch.randn(len(y), 32, generator=g)), y

    (xt, yt), (xv, yv), (xs, ys) = draw(40), draw(20), draw(20)
    assert (xt >= 0).all() and xt.mean() > 1
    joint = fit_linear(xt, yt, 5)
    res = run_decoupled(FeatureSplits(xt, yt, xv, yv, xs, ys), joint, 5,
                        DecoupledOptions(methods=("joint", "tau_norm"), taus=(0.0,)))
    m = res["methods"]
    assert m["joint"]["all"] > 0.95
    assert m["tau_norm"]["tau"] == 0.0
    assert m["tau_norm"]["all"] == m["joint"]["all"] and m["tau_norm"]["val_all"] == m["joint"]["val_all"]
    # the tau = 0 scores are the joint logits less the learned bias, which is small next to them
    from unnas.eval.decoupled import tau_scores

    s = tau_scores(joint, 0.0, xs)
    torch.testing.assert_close(s, joint.logits(xs) - joint.bias, rtol=1e-5, atol=1e-4)
    assert joint.bias.abs().max() < 0.05 * s.abs().max()
