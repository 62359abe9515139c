"""DARTS: the mixed operation and the derivations on fixed weights (by hand), the second-order
gradient against the exact hypergradient, and the supernets of the three spaces."""

import pytest
import torch
from torch import nn

from unnas.generators import nb201, nds
from unnas.generators.complexity import complexity
from unnas.search.base import ArchContext, ArchStep, grads_of, run_with
from unnas.search.darts import second_order
from unnas.search.darts_spaces import DARTS_OPS, MixedOp, derive_cell
from unnas.search.loop import make_method
from unnas.spec import ArchSpec, build


class Scale(nn.Module):
    def __init__(self, s: float):
        super().__init__()
        self.s = s

    def forward(self, x):
        return self.s * x


def test_mixed_op_is_the_softmax_weighted_sum_and_its_alpha_gradient_is_the_hand_one():
    ctx = ArchContext()
    alpha = torch.log(torch.tensor([[1.0, 2.0, 3.0]])).requires_grad_(True)  # softmax = 1/6, 2/6, 3/6
    op = MixedOp([nn.Identity(), Scale(0.0), Scale(2.0)], ctx, "g", 0)
    x = torch.tensor([1.0, -2.0, 4.0])
    ctx.weights = {"g": torch.softmax(alpha, dim=-1)}
    out = op(x)
    assert torch.allclose(out, x * 7 / 6)  # x/6 + 0 + 2x * 3/6
    out.sum().backward()
    s = float(x.sum())  # d/da_i sum_j w_j f_j = w_i (f_i - sum_j w_j f_j), f = (S, 0, 2S), mean 7S/6
    assert torch.allclose(alpha.grad, torch.tensor([[-s / 36, -7 * s / 18, 5 * s / 12]]))
    ctx.weights = None
    with pytest.raises(RuntimeError, match="outside"):
        op(x)


def _row(**w):
    """One edge's weights over DARTS_OPS: the given ones, 0.02 for the other non-none ops, and
    ``none`` taking the rest of 1 (it never counts)."""
    row = [w.get(o, 0.02) for o in DARTS_OPS]
    row[0] = 1 - sum(row[1:])
    assert row[0] > 0
    return row


HAND_NORMAL = [  # edges: node 0 <- inputs 0, 1; node 1 <- 0, 1, 2; node 2 <- 0..3; node 3 <- 0..4
    _row(sep_conv_3x3=0.06), _row(skip_connect=0.3),
    _row(max_pool_3x3=0.2), _row(dil_conv_5x5=0.4), _row(),
    _row(), _row(avg_pool_3x3=0.3), _row(sep_conv_5x5=0.5), _row(skip_connect=0.3),
    _row(), _row(sep_conv_3x3=0.6), _row(), _row(), _row(dil_conv_3x3=0.7),
]
# node 0 keeps both inputs; node 1: 0.2 (input 0) and 0.4 (input 1) beat 0.02 (input 2, whose
# `none` weighs 0.86 but does not count); node 2: 0.5 (input 2), then a tie at 0.3 between inputs
# 1 and 3 goes to the lower input; node 3: 0.7 (input 4) and 0.6 (input 1)
HAND_GENOTYPE = [("sep_conv_3x3", 0), ("skip_connect", 1), ("max_pool_3x3", 0), ("dil_conv_5x5", 1),
                 ("avg_pool_3x3", 1), ("sep_conv_5x5", 2), ("sep_conv_3x3", 1), ("dil_conv_3x3", 4)]


def test_genotype_derivation_on_fixed_weights_by_hand():
    assert list(derive_cell(torch.tensor(HAND_NORMAL))) == HAND_GENOTYPE
    # all non-none weights equal: the first two inputs, each with the first non-none op
    flat = derive_cell(torch.full((14, 8), 0.125))
    assert list(flat) == [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4


def test_darts_cell_supernet_derives_a_buildable_nds_darts_spec():
    method = make_method("darts")
    net = method.build("nds-darts", {"width": 4, "depth": 3}, 3, seed=0)
    assert [tuple(a.shape) for a in net.arch_parameters()] == [(14, 8), (14, 8)]
    assert all(float(a.detach().abs().max()) < 0.01 for a in net.arch_parameters())  # 1e-3 * randn
    with torch.no_grad():
        net.alphas["normal"].copy_(torch.log(torch.tensor(HAND_NORMAL)))
        net.alphas["reduce"].zero_()
    spec = net.derive()
    normal, reduce = nds.parse_genotype(spec.params["genotype"], "darts")
    assert list(normal) == HAND_GENOTYPE and list(reduce) == [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4
    assert spec.generator == "nds-darts" and spec.params["width"] == 4 and spec.params["depth"] == 3
    assert build(spec, 3).structure == spec.params["genotype"]
    out = net.forward_features(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, net.num_features, 4, 4)


def test_nb201_supernet_argmax_per_edge_includes_none():
    net = make_method("darts").build("nb201", {"width": 0.25}, 3, seed=0)
    ops = ["nor_conv_3x3", "none", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none"]
    with torch.no_grad():
        for e, op in enumerate(ops):
            net.alphas["edges"][e, nb201.OPS.index(op)] = 1.0
    spec = net.derive()
    assert spec == ArchSpec("nb201", {"arch": nb201.to_str(ops), "width": 0.25, "cells": 1}, 0)
    assert complexity(spec)["params"] > 0
    assert net.forward_features(torch.randn(2, 3, 8, 8)).shape == (2, 16, 2, 2)


def test_macro_supernet_one_choice_per_layer():
    net = make_method("darts").build("macro", {"width": 0.125}, 1, seed=0)
    with torch.no_grad():
        for i, d in enumerate("02012100"):
            net.alphas["layers"][i, int(d)] = 2.0
    assert net.derive() == ArchSpec("macro", {"arch": "02012100", "width": 0.125}, 0)
    # a softmax that is one-hot to float precision computes the chosen network itself
    with torch.no_grad():
        net.alphas["layers"].mul_(100.0)
    chosen = build(net.derive(), 1).eval()
    own = {}
    for k, v in net.net.state_dict().items():
        i, d = _layer_choice(k)
        if d is None:
            own[k] = v
        elif d == int("02012100"[i]):
            own[k.replace(f"layers.{i}.ops.{d}.", f"layers.{i}.")] = v
    chosen.load_state_dict(own)
    net.eval()
    x = torch.randn(2, 1, 16, 16)
    assert torch.allclose(net.forward_features(x), chosen.forward_features(x), atol=1e-5)


def _layer_choice(key: str):
    parts = key.split(".")
    if parts[0] == "layers" and parts[2] == "ops":
        return int(parts[1]), int(parts[3])
    return None, None


def test_unknown_space_and_bad_options_are_user_errors():
    from unnas.errors import UserError
    from unnas.search.darts import DartsOptions

    with pytest.raises(UserError, match="generator"):
        make_method("darts").build("randwire-ws", {}, 3, seed=0)
    with pytest.raises(UserError, match="darts.arch_lr"):
        make_method("darts", DartsOptions(arch_lr=-1.0))
    with pytest.raises(UserError, match="search method"):
        make_method("enas")


class Toy(nn.Module):
    """A smooth stand-in for an objective around a supernet (float64, a BN layer, augmentation noise
    from the generator): ``alpha`` mixes two heads."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(5, 3, generator=g, dtype=torch.float64))
        self.bn = nn.BatchNorm1d(5).double()
        self.w2 = nn.Parameter(torch.randn(5, generator=g, dtype=torch.float64))
        self.alpha = nn.Parameter(torch.tensor([0.3, -0.2], dtype=torch.float64))

    def forward(self, images, labels, generator):
        x = images.double() / 255 + 0.1 * torch.randn(images.shape, generator=generator, dtype=torch.float64)
        h = torch.tanh(self.bn(x @ self.w1.T))
        mix = torch.softmax(self.alpha, dim=0)
        out = mix[0] * torch.tanh(h @ self.w2) + mix[1] * (h @ self.w2) ** 2 / 4
        return {"loss": ((out - x[:, 0]) ** 2).mean(), "acc": torch.tensor(0.0)}


def _toy_step():
    obj = Toy().train()
    g = torch.Generator().manual_seed(1)
    xa = torch.randint(0, 256, (16, 3), generator=g, dtype=torch.uint8)
    xw = torch.randint(0, 256, (16, 3), generator=g, dtype=torch.uint8)
    named = [(n, p) for n, p in obj.named_parameters() if n != "alpha"]
    opt = torch.optim.SGD([p for _, p in named], lr=0.05, momentum=0.9, weight_decay=3e-4)

    def fwd(x):
        return lambda weights, gen: run_with(obj, weights, x, None, torch.Generator().manual_seed(11))

    return obj, ArchStep(obj, [obj.alpha], [n for n, _ in named], [p for _, p in named], opt, fwd(xa), fwd(xw),
                         lambda out: out["loss"], torch.Generator().manual_seed(5))


def test_second_order_gradient_matches_the_exact_hypergradient():
    """DARTS's finite-difference Hessian-vector product against autograd through the virtual step
    ``w' = w - xi (grad + wd w)``; buffers (BN statistics) are left as they were."""
    xi = 0.5  # large, so that the second-order term is a sizeable part of the gradient
    obj, step = _toy_step()
    before = {k: v.clone() for k, v in obj.state_dict().items()}
    _, approx = second_order(step, xi, 0.01)
    after = obj.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the virtual passes changed a buffer"

    w = step.weight_params
    g = torch.autograd.grad(step.weight_forward(None, None)["loss"], w, create_graph=True)
    wd = step.optimizer.param_groups[0]["weight_decay"]
    moved = {n: p - xi * (gi + wd * p) for n, p, gi in zip(step.weight_names, w, g)}
    exact = grads_of(step.arch_forward(moved, None)["loss"], step.arch_params)[0]
    first = grads_of(step.arch_forward({n: v.detach() for n, v in moved.items()}, None)["loss"],
                     step.arch_params)[0]
    correction = float((exact - first).norm())
    assert correction > 0.05 * float(exact.norm()), "the test would not see a wrong second-order term"
    assert float((approx[0] - exact).norm()) < 1e-3 * correction
    with torch.no_grad():  # a momentum buffer enters the virtual step as DARTS's does
        for p in w:
            step.optimizer.state[p]["momentum_buffer"] = torch.ones_like(p)
    _, with_momentum = second_order(step, xi, 0.01)
    assert not torch.allclose(with_momentum[0], approx[0])


@pytest.mark.parametrize("space,params", [("nds-darts", {"width": 4, "depth": 3}), ("nb201", {"width": 0.25})])
def test_search_operations_use_non_affine_batchnorm(space, params):
    """DARTS (and NAS-Bench-201's DARTS baseline) build every search operation with affine=False."""
    net = make_method("darts").build(space, params, 3, seed=0)
    mixed = [m for m in net.modules() if isinstance(m, MixedOp)]
    bns = [b for m in mixed for b in m.modules() if isinstance(b, nn.BatchNorm2d)]
    assert bns and not any(b.affine for b in bns)
    if space == "nb201":  # an edge at width 4: nor_conv_1x1 4*4 + nor_conv_3x3 9*4*4 conv weights, no BN weights
        assert sum(p.numel() for p in mixed[0].parameters()) == 16 + 144
    else:  # the cell inputs' preprocessing too, as in DARTS' search cell
        cells = [c for c in net.modules() if hasattr(c, "pre0")]
        assert not any(b.affine for c in cells for b in c.modules() if isinstance(b, nn.BatchNorm2d))
    net.forward_features(torch.randn(2, 3, 16, 16)).sum().backward()  # still trains
