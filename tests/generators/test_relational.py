"""Relational graphs: block masks, masked layers, width matching and graph measures."""

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unnas.errors import UserError
from unnas.generators import graphs
from unnas.generators.complexity import count_params
from unnas.generators.relational import MaskedConv2d, MaskedLinear, adjacency, block_mask, effective_macs, group_sizes, mask_nnz
from unnas.spec import ArchSpec, build, get_generator


def test_group_sizes_and_block_mask_by_hand():
    assert list(group_sizes(7, 3)) == [3, 2, 2]
    adj = adjacency(nx.path_graph(3))  # 0-1-2 plus self-loops
    m = block_mask(adj, 5, 4)  # out groups [2, 2, 1], in groups [2, 1, 1]
    expect = np.array([[1, 1, 1, 0],
                       [1, 1, 1, 0],
                       [1, 1, 1, 1],
                       [1, 1, 1, 1],
                       [0, 0, 1, 1]], dtype=bool)
    assert (m == expect).all()
    assert mask_nnz(adj, 5, 4) == expect.sum() == 16


def test_masked_layers_equal_dense_layers_with_masked_weights():
    torch.manual_seed(0)
    adj = adjacency(nx.cycle_graph(4))
    mask = block_mask(adj, 8, 6)
    lin = MaskedLinear(6, 8, mask)
    assert lin.weight.numel() == mask.sum()
    dense = lin.dense_weight()
    assert (dense[~torch.from_numpy(mask)] == 0).all()
    x = torch.randn(3, 6)
    assert torch.allclose(lin(x), x @ dense.T)
    conv = MaskedConv2d(6, 8, 3, 2, mask)
    assert conv.weight.numel() == mask.sum() * 9
    x = torch.randn(2, 6, 7, 7)
    ref = F.conv2d(x, conv.dense_weight(), None, 2, 1)
    assert torch.allclose(conv(x), ref, atol=1e-6)
    # gradients reach exactly the unmasked weights
    conv(x).square().sum().backward()
    assert conv.weight.grad.shape == conv.weight.shape and conv.weight.grad.abs().sum() > 0


def test_complete_graph_is_the_dense_mlp():
    n, w, res, layers = 8, 16, 4, 3
    spec = ArchSpec("relational-mlp", {"nodes": n, "k": float(n - 1), "width": w, "resolution": res, "layers": layers})
    net = build(spec, 3)
    dense = (3 * res * res) * w + 2 * w + layers * (w * w + 2 * w)  # linears + BN (weight, bias)
    assert count_params(net) == dense
    assert net.num_features == w and net.has_spatial is False
    assert effective_macs(net, (1, 3, res, res)) == 3 * res * res * w + layers * w * w
    m = get_generator("relational-mlp").measures(get_generator("relational-mlp").resolve(spec.params), 0)
    assert m == {"C": 1.0, "L": 1.0, "density": 1.0}


def test_match_flops_widens_sparse_graphs_just_enough():
    gen = get_generator("relational-mlp")
    for seed in range(5):
        params = gen.resolve({"nodes": 16, "k": 4.0, "p": 0.3, "width": 64})
        adj = adjacency(gen.graph(params, seed))
        w = gen.widths(params, adj)
        macs = lambda rw: mask_nnz(adj, rw, 64) + 2 * mask_nnz(adj, rw, rw)
        target = 64 * 64 * 3
        assert macs(w) >= target > macs(w - 1)
        net = build(ArchSpec("relational-mlp", params, seed), 1)
        assert net.num_features == w > 64
        assert effective_macs(net, (1, 1, 16, 16)) == 256 * 64 + macs(w)
    off = gen.resolve({"nodes": 16, "k": 4.0, "width": 64, "match_flops": False})
    assert build(ArchSpec("relational-mlp", off, 0), 1).num_features == 64


def test_relational_resnet_matching_and_gradients():
    gen = get_generator("relational-resnet")
    params = gen.resolve({"nodes": 4, "k": 2.0, "width": 8, "depths": [1, 1]})
    spec = ArchSpec("relational-resnet", params, 2)
    net = build(spec, 3)
    adj = adjacency(gen.graph(params, 2))
    assert net.num_features == 2 * gen.widths(params, adj)
    # 4 nodes, 4 edges: density (8 + 4) / 16 = 0.75 < 1, so matching widens the relational width
    assert gen.widths(params, adj) > 8
    out = net.forward_features(torch.randn(4, 3, 16, 16))
    (out * torch.randn_like(out)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().max() > 1e-6 for p in net.parameters())


def test_measures_record_graph_c_and_l():
    gen = get_generator("relational-mlp")
    params = gen.resolve({"nodes": 16, "k": 5.0, "p": 0.2})
    g = graphs.ws_flex(16, 5.0, 0.2, seed=graphs.sub_seed(3, 0))
    m = gen.measures(params, 3)
    assert m["C"] == pytest.approx(nx.average_clustering(g))
    assert m["L"] == pytest.approx(nx.average_shortest_path_length(g))
    assert m["density"] == pytest.approx((2 * 40 + 16) / 256)


def test_mlp_pools_any_input_to_its_resolution():
    net = build(ArchSpec("relational-mlp", {"resolution": 8}), 1).eval()
    x = torch.randn(2, 1, 16, 16)
    assert torch.allclose(net.forward_features(x), net.forward_features(F.avg_pool2d(x, 2)), atol=1e-6)
    assert net.forward_features(torch.randn(2, 1, 28, 28)).shape == (2, net.num_features)


def test_bad_relational_params():
    with pytest.raises(UserError, match="width"):
        build(ArchSpec("relational-mlp", {"nodes": 16, "width": 8}), 3)
    with pytest.raises(UserError, match="k"):
        build(ArchSpec("relational-mlp", {"nodes": 8, "k": 8.0}), 3)
    with pytest.raises(UserError, match="depths"):
        build(ArchSpec("relational-resnet", {"depths": []}), 3)
