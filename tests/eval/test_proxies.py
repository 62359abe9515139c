"""Every proxy against a value written out by hand on a tiny network."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from unnas.eval.proxies import compute_proxy, scaled
from unnas.eval.proxies.patterns import distinct_patterns, naswot_kernel, pattern_keys, population_prior

from unnas.spec import Backbone

# one linear layer W, no bias, on three 2-pixel images (Quadratic objective: L = 0.5 mean ||W x||^2)
W = [[1.0, 2.0], [0.0, -1.0]]
X3 = [[1, 0], [0, 2], [1, 1]]
# S = mean x x^T = [[2, 1], [1, 5]] / 3 ;  dL/dW = W S = [[4, 11], [-1, -5]] / 3


def one_layer(flat, make_linear, make_input, rows=X3):
    return make_input(flat(make_linear(W), num_features=2), rows)


def test_grad_norm_snip_grasp_by_hand(flat, make_linear, make_input):
    x = one_layer(flat, make_linear, make_input)
    opts = {"batch_size": 3}
    assert compute_proxy("grad_norm", x, opts) == pytest.approx(math.sqrt(16 + 121 + 1 + 25) / 3, rel=1e-6)
    # |W * WS| summed: (1*4 + 2*11 + 0*1 + 1*5) / 3
    assert compute_proxy("snip", x, opts) == pytest.approx(31 / 3, rel=1e-6)
    # L is quadratic: H g = W S S, so -sum W * (W S S) = -||W S||^2
    assert compute_proxy("grasp", x, opts) == pytest.approx(-163 / 9, rel=1e-6)


def test_fisher_by_hand(flat, make_linear, make_input):
    x = one_layer(flat, make_linear, make_input)
    # activations a_b = W x_b: (1, 0), (4, -2), (3, -1); dL/da_b = a_b / 3, so the per-sample
    # channel value is a^2 / 3; F_k = 0.5 mean_b (a_bk^2 / 3)^2: F_0 = 169/27, F_1 = 17/54;
    # each channel counted once per weight of its row (2 inputs)
    assert compute_proxy("fisher", x, {"batch_size": 3}) == pytest.approx(2 * (169 / 27 + 17 / 54), rel=1e-6)


def test_zico_by_hand(flat, make_linear, make_input):
    x = one_layer(flat, make_linear, make_input, rows=[[1, 0], [0, 2], [1, 1], [2, 1]])
    # batch 1: W S1 = [[1, 8], [0, -4]] / 2 ; batch 2: W S2 = [[11, 7], [-3, -2]] / 2
    # mean|g| / std g = (|g1| + |g2|) / |g1 - g2|: 12/10 + 15/1 + 3/3 + 6/2 = 20.2
    assert compute_proxy("zico", x, {"batch_size": 2, "batches": 2}) == pytest.approx(math.log(20.2), rel=1e-6)


def test_zico_sums_log_per_layer(flat, make_linear, make_input):
    w1, w2 = np.array([[1.0, 2.0], [0.5, -1.0]]), np.array([[2.0, -1.0]])
    rows = [[1, 0], [0, 2], [1, 1], [2, 1]]
    x = make_input(flat(make_linear(w1.tolist()), make_linear(w2.tolist()), num_features=1), rows)

    def grads(batch):  # f = W2 W1 x: dL/dW2 = W2 W1 S W1^T, dL/dW1 = W2^T W2 W1 S
        xs = np.array(batch, float)
        s = xs.T @ xs / len(xs)
        return w2 @ w1 @ s @ w1.T, w2.T @ w2 @ w1 @ s

    (a2, a1), (b2, b1) = grads(rows[:2]), grads(rows[2:])
    expected = sum(math.log(((np.abs(p) + np.abs(q)) / np.abs(p - q)).sum()) for p, q in ((a1, b1), (a2, b2)))
    assert compute_proxy("zico", x, {"batch_size": 2, "batches": 2}) == pytest.approx(expected, rel=1e-6)


def test_synflow_by_hand(flat, make_linear, make_input):
    w1, w2 = [[1.0, -2.0], [3.0, 0.5]], [[-1.0, 2.0]]
    # |W1| 1 = (3, 3.5); R = |W2| |W1| 1 = 10; each layer of a bias-free linear chain contributes R
    plain = make_input(flat(make_linear(w1), make_linear(w2), num_features=1), [[5, 7]])
    assert compute_proxy("synflow", plain) == pytest.approx(20.0, rel=1e-12)
    # BatchNorm is bypassed and ReLU is the identity on the sign-linearised network
    with_bn = make_input(flat(make_linear(w1), nn.BatchNorm1d(2), nn.ReLU(), make_linear(w2), num_features=1), [[5, 7]])
    assert compute_proxy("synflow", with_bn) == pytest.approx(20.0, rel=1e-12)
    # biases count in the flow (|b1| = (1, 0): layer-2 inputs become (4, 3.5)) but not in the sum
    biased = make_input(flat(make_linear(w1, [-1.0, 0.0]), make_linear(w2), num_features=1), [[5, 7]])
    assert compute_proxy("synflow", biased) == pytest.approx(10.0 + 11.0, rel=1e-12)
    assert scaled("synflow", 20.0) == pytest.approx(math.log10(20.0))


def test_synflow_conv_is_float64(flat, make_input):
    conv = nn.Conv2d(1, 1, (1, 2), bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1e-30, -3.0]]]]))
    x = make_input(flat(nn.Unflatten(1, (1, 1, 2)), conv, nn.Flatten(), num_features=1), [[1, 1]])
    # R = sum |k| on a ones input: one layer contributes R; 1e-30 + 3 is only representable in float64
    assert compute_proxy("synflow", x) - 3.0 == pytest.approx(1e-30, rel=1e-6)


def naswot_net(flat, make_linear):
    # pre-activations W x for x = (2, 1), (1, 2), (3, 1): (1, 0, 0), (-1, 3, -3), (2, -1, 1)
    return flat(make_linear([[1.0, -1.0], [-1.0, 2.0], [1.0, -2.0]]), nn.ReLU(), num_features=3)


def test_naswot_by_hand(flat, make_linear, make_input):
    x = make_input(naswot_net(flat, make_linear), [[2, 1], [1, 2], [3, 1]])
    # codes (a unit is active when its input is > 0): 100, 010, 101; K = 3 - hamming
    # K = [[3, 1, 2], [1, 3, 0], [2, 0, 3]], det K = 27 - 3 - 12 = 12
    assert compute_proxy("naswot", x, {"batch_size": 3}) == pytest.approx(math.log(12.0), rel=1e-12)


def test_naswot_bn_in_training_mode(flat, make_linear, make_input):
    rows = [[4, 1], [0, 0], [0, 1], [1, 0]]
    w = np.array([[0.0, -1.0], [2.0, -2.0], [1.0, 1.0], [0.0, 2.0]])
    net = flat(make_linear(w.tolist()), nn.BatchNorm1d(4), nn.ReLU(), num_features=4).eval()
    x = make_input(net, rows)
    pre = np.array(rows, float) @ w.T
    codes = (pre - pre.mean(0)) / np.sqrt(pre.var(0) + 1e-5) > 0  # batch statistics
    # codes 0111, 1000, 0001, 1100: K = 4 - hamming = [[4,0,2,1],[0,4,2,3],[2,2,4,1],[1,3,1,4]], det 32
    assert codes.astype(int).tolist() == [[0, 1, 1, 1], [1, 0, 0, 0], [0, 0, 0, 1], [1, 1, 0, 0]]
    assert compute_proxy("naswot", x, {"batch_size": 4}) == pytest.approx(math.log(32.0), rel=1e-12)
    # the running statistics (mean 0, var 1) would give codes 0111, 0000, 0011, 0110 and det 20
    assert not net.training  # the caller's network keeps its mode


def test_naswot_kernel_two_layers():
    a = torch.tensor([[1, 0], [0, 0], [1, 1]], dtype=torch.bool)
    b = torch.tensor([[1], [1], [0]], dtype=torch.bool)
    # agreements per pair over 3 units: (1,2): 1 + 1, (1,3): 1 + 0, (2,3): 0 + 0
    expected = torch.tensor([[3, 2, 1], [2, 3, 0], [1, 0, 3]], dtype=torch.float64)
    assert torch.equal(naswot_kernel([a, b]), expected)


def test_swap_by_hand(flat, make_linear, make_input):
    # the NASWOT network plus a fourth unit with the signs of the first: patterns per unit over the
    # three images are (1,0,1), (0,1,0), (0,0,1) and (1,0,1) again: 3 distinct
    net = flat(make_linear([[1.0, -1.0], [-1.0, 2.0], [1.0, -2.0], [2.0, -2.0]]), nn.ReLU(), num_features=4)
    x = make_input(net, [[2, 1], [1, 2], [3, 1]])
    assert compute_proxy("swap", x, {"batch_size": 3, "init": "none"}) == 3.0
    # 8 weights = 0.008 thousand parameters: centred there the factor is 1, a width sigma = 0.008^2
    # away it is 1/e
    assert compute_proxy("swap_reg", x, {"batch_size": 3, "init": "none", "mu": 0.008, "sigma": 1.0}) == 3.0
    value = compute_proxy("swap_reg", x, {"batch_size": 3, "init": "none", "mu": 0.0, "sigma": 0.008 ** 2})
    assert value == pytest.approx(3.0 / math.e, rel=1e-9)


class MapNet(Backbone):
    """A 1x1 conv and a ReLU on the (B, 1, 1, 2) image, then a ReLU of the pooled features."""

    num_features = 1

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        nn.init.ones_(self.conv.weight)

    def forward_features(self, x):
        return torch.relu(self.conv(x))

    def forward_head(self, x, pre_logits=False):
        return torch.relu(x.mean(dim=(2, 3)) - 100.0)  # inactive everywhere: one more pattern if counted


def test_swap_counts_feature_maps_only_on_spatial_backbones(make_input):
    x = make_input(MapNet(), [[1, 0], [0, 1], [1, 1]])
    # map units: pixel 0 is active on images 1 and 3, pixel 1 on images 2 and 3: 2 distinct patterns
    assert compute_proxy("swap", x, {"batch_size": 3, "init": "none"}) == 2.0


def test_pattern_keys_match_unique_rows():
    g = torch.Generator().manual_seed(0)
    for b in (3, 63, 64, 130):
        codes = torch.rand(b, 500, generator=g) < 0.1
        codes[:, 250:] = codes[:, :250]  # duplicated units
        assert distinct_patterns([codes[:, :300], codes[:, 300:]]) == torch.unique(codes.T, dim=0).shape[0]
        assert pattern_keys(codes).shape == (500, math.ceil(b / 63))


def test_population_prior():
    assert population_prior([1000, 3000]) == {"mu": 2.0, "sigma": 2.0}


def test_jacob_cov_by_hand(flat, make_linear, make_input):
    k = 1e-5
    # a linear network: every image has the same input gradient W1^T W2^T 1, so the correlation matrix
    # is all ones, with eigenvalues (3, 0, 0)
    lin = make_input(flat(make_linear([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0]]), make_linear([[1.0, 1.0]]), num_features=1),
                     [[1, 2, 3], [3, 0, 1], [2, 2, 2]])
    expected = -(math.log(3 + k) + 1 / (3 + k) + 2 * (math.log(k) + 1 / k))
    assert compute_proxy("jacob_cov", lin, {"batch_size": 3}) == pytest.approx(expected, rel=1e-9)
    # with a ReLU, image b's gradient is W1^T diag(W1 x_b > 0) W2^T 1
    w1, w2 = np.array([[1.0, -2.0, 0.5], [-1.0, 1.0, 1.0], [0.5, 0.5, -1.0]]), np.array([[1.0, -2.0, 3.0]])
    rows = [[1, 2, 3], [3, 0, 1], [2, 2, 0], [0, 1, 4]]
    x = make_input(flat(make_linear(w1.tolist()), nn.ReLU(), make_linear(w2.tolist()), num_features=1), rows)
    jac = np.stack([w1.T @ ((w1 @ np.array(r, float) > 0) * w2[0]) for r in rows])
    v = np.linalg.eigvalsh(np.corrcoef(jac))
    assert compute_proxy("jacob_cov", x, {"batch_size": 4}) == pytest.approx(-np.sum(np.log(v + k) + 1 / (v + k)), rel=1e-9)


def test_params_and_flops_by_hand(flat, make_linear, make_input):
    x = make_input(flat(make_linear([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [0.0, 0.0, 0.0]), num_features=3), [[1, 2]])
    assert compute_proxy("params", x) == 9.0  # 6 weights, 3 biases
    assert compute_proxy("flops", x) == 12.0  # 2 x (2 inputs x 3 outputs) multiply-adds
    assert scaled("params", 1000.0) == pytest.approx(3.0)
