"""DMaskingNAS: masks, effective channels and FLOPs against hand counts, Gumbel-softmax, the
zero-interleaving of resolutions, and the supernet with one-hot weights against the derived network."""

import math

import pytest
import torch

from unnas.generators.complexity import complexity
from unnas.search.base import ArchContext
from unnas.search.dmasking import DMaskingOptions, MaskedLayer
from unnas.search.loop import make_method
from unnas.search.masks import effective, gumbel_noise, gumbel_softmax, interleave, leading_ones, mixed_mask
from unnas.spec import build


def test_masks_have_leading_ones_and_mix_to_the_effective_count():
    m = leading_ones([2, 3], 4)
    assert m.tolist() == [[1, 1, 0, 0], [1, 1, 1, 0]]
    mixed = mixed_mask(torch.tensor([0.25, 0.75]), m)
    assert mixed.shape == (1, 4, 1, 1) and mixed.flatten().tolist() == [1.0, 1.0, 0.75, 0.0]
    eff = effective(torch.tensor([0.25, 0.75]), [2, 3])
    assert float(eff) == 2.75 == float(mixed.sum())  # 0.25 * 2 + 0.75 * 3
    with pytest.raises(ValueError):
        leading_ones([5], 4)


def test_gumbel_softmax_is_seeded_and_its_argmax_follows_softmax():
    a = gumbel_noise((3,), torch.Generator().manual_seed(0))
    b = gumbel_noise((3,), torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    logits = torch.log(torch.tensor([0.2, 0.3, 0.5]))
    assert torch.allclose(gumbel_softmax(logits, 1.0), torch.tensor([0.2, 0.3, 0.5]))
    # Gumbel-max: argmax(logits + G) is distributed as softmax(logits)
    g = gumbel_noise((20000, 3), torch.Generator().manual_seed(1))
    freq = torch.bincount((logits + g).argmax(dim=1), minlength=3).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.2, 0.3, 0.5]), atol=0.015)
    # a low temperature makes the relaxed sample nearly one-hot, a high one nearly uniform
    assert float(gumbel_softmax(logits, 0.01, g[0]).max()) > 0.99
    assert float(gumbel_softmax(logits, 100.0, g[0]).max()) < 0.4


def test_interleave_puts_a_subsampled_map_back_on_the_full_grid():
    y = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    out = interleave(y, (4, 4))  # rows / columns floor(i * 4 / 2) = 0, 2
    expect = torch.zeros(1, 1, 4, 4)
    expect[0, 0, 0, 0], expect[0, 0, 0, 2], expect[0, 0, 2, 0], expect[0, 0, 2, 2] = 1, 2, 3, 4
    assert torch.equal(out, expect)
    assert torch.equal(interleave(y, (2, 2)), y)


def _layer(ctx):
    # input widths (8, 16), output widths (16, 32), expansions (0, 3, 6), k=3, stride 2
    return MaskedLayer(ctx, 0, "in", "out", [8, 16], [16, 32], [0, 3, 6], 3, 2)


def test_flops_of_a_masked_block_equal_the_hand_count():
    ctx = ArchContext()
    layer = _layer(ctx)
    w = {"in": torch.tensor([[0.25, 0.75]]), "out": torch.tensor([[0.5, 0.5]]),
         "expansions": torch.tensor([[0.2, 0.3, 0.5]]), "expansions_nonzero": torch.tensor([[0.375, 0.625]])}
    per_in, per_out = layer.flops_terms(w)
    # cin_eff = 0.25*8 + 0.75*16 = 14; cout_eff = 24; hidden round(cin*t) for cin 8: 0, 24, 48 and for
    # cin 16: 0, 48, 96 -> hidden_eff = 0.25*(0.3*24 + 0.5*48) + 0.75*(0.3*48 + 0.5*96) = 54.6
    # on an 8x8 input (4x4 output): expansion 2*14*54.6*64 = 97,843.2; depthwise 2*9*54.6*16 = 15,724.8;
    # projection 2*54.6*24*16 = 41,932.8; the identity's 1x1 conv 0.2 * 2*14*24*16 = 2,150.4
    total = float(per_in) * 64 + float(per_out) * 16
    assert math.isclose(total, 97_843.2 + 15_724.8 + 41_932.8 + 2_150.4, rel_tol=1e-6)
    # the hidden mask: weight of the pair (cin, t) is g_cin * g_t (t renormalised among t > 0)
    ctx.weights = w
    x = torch.randn(2, 16, 8, 8)
    assert layer(x).shape == (2, 32, 4, 4)
    m = torch.einsum("a,b,abc->c", w["in"][0], w["expansions_nonzero"][0], layer.hidden_masks)
    assert math.isclose(float(m.sum()), 0.25 * (0.375 * 24 + 0.625 * 48) + 0.75 * (0.375 * 48 + 0.625 * 96))


def _one_hot(net, rng):
    """Random one-hot architecture weights for the supernet (large logits, tau 1, no noise)."""
    with torch.no_grad():
        for a in net.alphas.values():
            a.zero_()
            for row in a:
                row[int(torch.randint(row.numel(), (1,), generator=rng))] = 60.0
    net.tau, net.noise = 1.0, None


def _copy_into(derived, supernet):
    """The derived network's weights: leading slices of the supernet's widest ones."""
    sup = supernet.net.state_dict()
    own = derived.state_dict()
    for k, v in own.items():
        key = k
        if k.startswith("layers."):
            i, rest = k.split(".")[1], ".".join(k.split(".")[2:])
            key = f"layers.{i}.block.{rest}" if rest.startswith("conv.") else f"layers.{i}.skip.{rest}"
        src = sup[key]
        own[k] = src[tuple(slice(0, n) for n in v.shape)] if v.dim() else src
    derived.load_state_dict(own)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_one_hot_supernet_is_the_derived_network(seed):
    """With one-hot weights the masked supernet computes the derived network (weights sliced from the
    widest ones), and its expected FLOPs are the derived network's measured FLOPs."""
    torch.manual_seed(seed)
    method = make_method("dmasking", DMaskingOptions(resolutions=[1.0, 0.75, 0.5]))
    net = method.build("fbnet-macro", {"kernels": [3, 5, 3, 5, 3, 5, 3, 5]}, 3, seed)
    _one_hot(net, torch.Generator().manual_seed(seed))
    with torch.no_grad():  # BN that shifts zeros: a channel left unmasked anywhere would show
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-1, 1)
                m.running_mean.uniform_(-1, 1), m.running_var.uniform_(0.5, 2)
    spec = net.derive()
    derived = build(spec, 3)
    _copy_into(derived, net)
    net.eval(), derived.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net.pooled(x), derived.pooled(x), atol=1e-5)
        flops = float(net.expected_flops((32, 32)))
    assert math.isclose(flops, complexity(spec, 3, 32)["flops"], rel_tol=1e-6)


def test_derived_spec_follows_the_argmax_and_the_temperature_decays():
    method = make_method("dmasking")
    net = method.build("fbnet-macro", {}, 1, seed=0)
    with torch.no_grad():
        for a in net.alphas.values():
            a.zero_()
        net.alphas["resolution"][0, 2] = 1.0  # resolutions sorted high to low: 1.0, 0.75, 0.5
        net.alphas["channels1"][0, 0] = 1.0  # round(0.5 * 32)
        net.alphas["expansions"][:, 2] = 1.0
        net.alphas["expansions"][4, 0] = 2.0
    p = net.derive().params
    assert p["resolution"] == 0.5 and p["channels"] == [8, 16, 32]  # ties: the first (narrowest) choice
    assert p["expansions"] == [6, 6, 6, 6, 0, 6, 6, 6]
    info = {k: method.epoch_start(torch.nn.Sequential(net), e)["temperature"] for k, e in (("a", 0), ("b", 3))}
    assert info["a"] == 5.0 and math.isclose(info["b"], 5.0 * 0.956 ** 3) and net.tau == info["b"]


def test_flops_aware_loss_is_fbnets_formula_and_pushes_towards_cheaper_choices():
    method = make_method("dmasking")
    net = method.build("fbnet-macro", {}, 3, seed=0)
    net.draw_noise(torch.Generator().manual_seed(0))
    loss = torch.tensor(1.5)
    flops = float(net.expected_flops((32, 32)).detach())
    out = method.arch_loss(net, loss, (32, 32))
    assert math.isclose(out.item(), 1.5 * 0.2 * math.log(flops) ** 0.6, rel_tol=1e-6)
    out.backward()
    g = net.alphas["expansions"].grad  # columns: expansion 0, 3, 6
    assert (g[:, 2] > g[:, 0]).all()  # raising the widest expansion's logit raises the loss
    assert float(net.alphas["resolution"].grad[0, 0]) > float(net.alphas["resolution"].grad[0, -1])
