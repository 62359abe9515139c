"""VKDNW: hand-computed pieces, the two Jacobian paths, label-freeness, and the authors' code.

The reference numbers were computed once by the authors' code (not part of this project):
ondratybl/VKDNW (commit 6901b65), ``NB201/ZeroShotProxy/compute_vkdnw_score.py::compute_nas_score``
(``vkdnw_entropy`` and ``vkdnw_dim``), with ``.cuda()`` made a no-op, one intra-op thread (AMD EPYC
CPU, torch 2.14.1), the global RNG set to our generator's state before the call (it draws the
Kaiming weights, then the Gaussian input), ``params_grad_len``/``p`` our ``tensors``/``per_tensor``,
``trainloader`` the first normalized images of the batch for ``input="data"``, and the network our
backbone with a ``Linear(num_features, 10)`` on its pooled features returning ``(features, logits)``.
One line of theirs was changed to run on torch 2.14: ``param = params[k].flatten()`` became
``params[k].flatten().clone()`` (torch.func no longer lets the function write into a view of a
captured tensor; the value written is the same). Their Fisher matrix and its SVD are float32, ours
float64; the spectrum spans about 25 decades, so on NAS-Bench-201 cells their deciles carry float32
rounding (their value moves by up to 0.4%); on NAS-Bench-Macro the two agree to 3e-5 or better.

Networks: NAS-Bench-201 cells at ``width=0.5, cells=2`` and NAS-Bench-Macro ``10201102`` at width
0.25, weights from ``torch.manual_seed(seed)``; 64 seeded random uint8 images (3 x 32 x 32).
"""

import math

import numpy as np
import pytest
import torch
from torch import nn
from unnas.eval.aggregate import parse
from unnas.eval.proxies import ProxyInput, compute_proxy
from unnas.eval.proxies.vkdnw import (
    VkdnwOptions,
    classifier_network,
    covariance_factor,
    decile_entropy,
    func_jacobians,
    initial_statistics,
    logit_jacobians,
    selected,
)

from unnas.errors import UserError
from unnas.objectives import DataInfo, build_objective
from unnas.registry import PROXIES
from unnas.spec import ArchSpec, build

INFO = DataInfo(3, 10, (32, 32), (0.4913, 0.4821, 0.4465), (0.247, 0.243, 0.261))
NB1 = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|skip_connect~2|"
NB2 = "|nor_conv_1x1~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
# run -> our options
RUNS = {"gaussian16": {"batch_size": 16}, "data16": {"batch_size": 16, "input": "data"}, "gaussian64": {},
        "gaussian16_t20_p2": {"batch_size": 16, "tensors": 20, "per_tensor": 2}}
# (generator, params, seed, image seed, relative tolerance, their vkdnw_dim, their vkdnw_entropy per run)
CASES = [
    ("nb201", {"arch": NB1, "width": 0.5, "cells": 2}, 0, 10, 5e-3, 75,
     {"gaussian16": 0.6435046195983887, "data16": 0.6681333780288696, "gaussian64": 0.7851809859275818,
      "gaussian16_t20_p2": 0.868306040763855}),
    ("nb201", {"arch": NB2, "width": 0.5, "cells": 2}, 1, 11, 5e-3, 93,
     {"gaussian16": 0.5812889933586121, "data16": 0.5310438871383667, "gaussian64": 0.8113618493080139,
      "gaussian16_t20_p2": 1.2042763233184814}),
    ("macro", {"arch": "10201102", "width": 0.25}, 2, 12, 3e-5, 53,
     {"gaussian16": 0.8045926094055176, "data16": 0.8462393283843994, "gaussian64": 0.8719209432601929,
      "gaussian16_t20_p2": 0.8708293437957764}),
]


def proxy_input(gen, params, seed, img_seed, info=INFO) -> ProxyInput:
    torch.manual_seed(seed)
    obj = build_objective("rotation", build(ArchSpec(gen, params), 3), info)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(img_seed))
    return ProxyInput(obj, images, torch.Generator().manual_seed(100 + seed))


@pytest.mark.parametrize("gen,params,seed,img_seed,rel,dim,theirs", CASES, ids=["nb201-a", "nb201-b", "macro"])
def test_equals_the_authors_code(gen, params, seed, img_seed, rel, dim, theirs):
    x = proxy_input(gen, params, seed, img_seed)
    for key, options in RUNS.items():
        assert compute_proxy("vkdnw", x, options) == pytest.approx(theirs[key], rel=rel), key
    single = compute_proxy("vkdnw_single", x, RUNS["gaussian16"])
    assert single == pytest.approx(dim + theirs["gaussian16"], rel=rel)
    assert single - compute_proxy("vkdnw", x, RUNS["gaussian16"]) == dim  # the parameter tensors, classifier included


def test_covariance_factor_by_hand_and_in_general():
    # p = (1/4, 3/4): q = (3/4, 0), d = (sqrt(3/16), 0), L_21 = -p_2 d_1 / q_1 = -sqrt(3/16)
    r = math.sqrt(3 / 16)
    expected = torch.tensor([[[r, 0.0], [-r, 0.0]]], dtype=torch.float64)
    assert torch.allclose(covariance_factor(torch.tensor([[0.25, 0.75]], dtype=torch.float64)), expected)
    p = torch.softmax(torch.randn(5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64), dim=1)
    factor = covariance_factor(p)
    assert torch.equal(factor, torch.tril(factor))
    assert torch.allclose(factor @ factor.transpose(1, 2), torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1))


def test_decile_entropy_by_hand():
    # 11 eigenvalues 1..11: the deciles (linear interpolation at 0.1 * 10 = 1, 2, ...) are 2..10
    t = np.arange(2, 11) / np.arange(2, 11).sum()
    assert decile_entropy(torch.arange(1.0, 12.0)) == pytest.approx(float(-(t * np.log(t)).sum()), rel=1e-9)
    assert decile_entropy(torch.full((20,), 3.0)) == pytest.approx(math.log(9), rel=1e-9)  # balanced: the maximum
    assert decile_entropy(torch.zeros(20)) == 0.0


def test_jacobian_of_a_linear_classifier_by_hand():
    # logits = W x + b: d logits / d W[0, 0] = x_0 e_0 and d logits / d b[0] = e_0 for every image
    net = nn.Linear(4, 3)
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    jac, logits = logit_jacobians(net.eval(), x, VkdnwOptions())
    assert jac.shape == (5, 3, 2) and torch.allclose(logits, net(x))
    expected = torch.zeros(5, 3, 2, dtype=torch.float64)
    expected[:, 0, 0], expected[:, 0, 1] = x[:, 0].double(), 1.0
    assert torch.allclose(jac, expected)


@pytest.mark.parametrize("gen,params", [("nb201", {"arch": NB2, "width": 0.5, "cells": 2}),
                                        ("macro", {"arch": "12012102", "width": 0.25}), ("resnet", {"width": 4})])
def test_layer_probes_equal_torch_func(gen, params):
    x = proxy_input(gen, params, 0, 0)
    net = classifier_network(x)
    initial_statistics(net)
    options = VkdnwOptions(per_tensor=3)
    inputs = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected = func_jacobians(net, inputs, selected(net, options)).double()
    jac, _ = logit_jacobians(net, inputs, options)
    assert jac.shape == expected.shape
    assert torch.allclose(jac, expected, rtol=1e-4, atol=1e-5 * float(expected.abs().max()))


def test_permuting_the_labels_changes_nothing():
    from unnas.config import DataConfig
    from unnas.data import load_dataset

    data = load_dataset(DataConfig(name="fake"))
    info = DataInfo.of(data)
    idx = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(3))[:8]

    def values(labels):  # the labels exist beside the images; the proxy is never given them
        assert labels.shape[0] == len(data.train)
        torch.manual_seed(0)
        obj = build_objective("supervised", build(ArchSpec("resnet", {"width": 4}), data.channels, info.num_classes), info)
        x = ProxyInput(obj, data.train.images[idx], torch.Generator().manual_seed(0))
        return [compute_proxy(n, x, {"batch_size": 8, "input": "data"}) for n in ("vkdnw", "vkdnw_single")]

    permuted = data.train.labels[torch.randperm(len(data.train), generator=torch.Generator().manual_seed(1))]
    assert values(data.train.labels) == values(permuted)


def test_own_classifier_is_used_and_bad_input_refused():
    x = proxy_input("resnet", {"width": 4}, 0, 0)
    assert isinstance(classifier_network(x).classifier, nn.Linear)
    with_own = build(ArchSpec("resnet", {"width": 4}), 3, 5)
    obj = build_objective("rotation", with_own, INFO)
    assert classifier_network(ProxyInput(obj, x.images, x.generator)).classifier.out_features == 5
    for bad in ({"input": "noise"}, {"init": "xavier"}, {"tensors": 0}, {"per_tensor": -1}, {"batch_size": 0}):
        with pytest.raises(UserError):
            compute_proxy("vkdnw", x, bad)
    one_class = DataInfo(3, 1, (32, 32), INFO.mean, INFO.std)
    with pytest.raises(UserError, match="at least 2 classes"):
        compute_proxy("vkdnw", proxy_input("resnet", {"width": 4}, 0, 0, one_class), {"batch_size": 4})


def test_the_papers_aggregation_is_a_logrank_ensemble_of_registered_proxies():
    agg = parse("logrank:vkdnw_single,jacob_cov,az_expressivity,az_trainability,flops")
    assert agg.rule == "logrank" and all(p in PROXIES for p in agg)
    assert not any(PROXIES.meta(p)["needs_loss"] for p in agg)


def test_ensemble_benchmark_by_hand(tmp_path, capsys, load_benchmark):
    import json

    mod = load_benchmark("proxy_ensembles")
    archs = ["00000012", "01201201", "12012100", "22222222"]
    x, y, v = [1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 3.0], [0.5, 0.4, 0.3, 0.2]
    lines = [json.dumps({"arch": a, "values": {"x": None, "vkdnw": v[i]}}) for i, a in enumerate(archs)]
    lines += [json.dumps({"arch": a, "values": {"jacob_cov": x[i], "meco": y[i]}, "seconds": {"jacob_cov": i + 1.0}})
              for i, a in enumerate(archs)]
    (tmp_path / "runs.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "table.json").write_text(json.dumps({a: {"mean_acc": 0.1 * (i + 1)} for i, a in enumerate(archs)}))
    argv = ["--out", str(tmp_path / "runs.jsonl"), "--table", str(tmp_path / "table.json"),
            "--ensemble", "logrank:jacob_cov,meco", "--ensemble", "mean:vkdnw,vkdnw_single"]
    assert mod.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    cols = out["columns"]
    # log(x/4) + log(y/4) = log(xy/16), xy = 2, 2, 12, 12: ranks 1.5, 1.5, 3.5, 3.5 against 1..4;
    # tau-b: 4 concordant pairs, none discordant, 2 of the 6 pairs tied in the ensemble: 4 / sqrt(4 * 6)
    assert cols["ensemble[logrank](jacob_cov+meco)"] == {"spearman": round(4 / math.sqrt(20), 4),
                                                         "kendall": round(4 / math.sqrt(4 * 6), 4), "n": 4}
    assert cols["jacob_cov"] == {"spearman": 1.0, "kendall": 1.0, "n": 4, "s_per_network_median": 2.5}
    assert cols["vkdnw"]["spearman"] == -1.0 and cols["x"] == {"n": 0}
    tensors = [len(list(build(ArchSpec("macro", {"arch": a, "width": 1.0}), 3).parameters())) + 2 for a in archs]
    single = [vi + t for vi, t in zip(v, tensors)]
    expected = mod.agreement(np.array(single), np.array([0.1, 0.2, 0.3, 0.4]))
    assert cols["vkdnw_single"] == expected and out["networks"] == 4
    assert mod.main(["--out", str(tmp_path / "none.jsonl"), "--ensemble", "x,y"]) == 2
