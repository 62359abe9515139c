"""RandWire ER / BA / WS: graphs per stage, node operation, sampling."""

import numpy as np
import pytest
import torch

from unnas.errors import UserError
from unnas.generators import graphs
from unnas.generators.randwire import Node, RandomStage
from unnas.spec import ArchSpec, build, get_generator


@pytest.mark.parametrize("name,graph", [
    ("randwire-ws", lambda n, s: graphs.ws(n, 4, 0.75, seed=s)),
    ("randwire-er", lambda n, s: graphs.er(n, 0.2, seed=s)),
    ("randwire-ba", lambda n, s: graphs.ba(n, 5, seed=s)),
])
def test_each_stage_uses_its_own_seeded_graph(name, graph):
    gen = get_generator(name)
    params = gen.resolve({"nodes": 10})
    dags = gen.dags(params, seed=5)
    assert len(dags) == params["stages"]
    for s, dag in enumerate(dags):
        assert dag == graphs.to_dag(graph(10, graphs.sub_seed(5, s)))
    net = build(ArchSpec(name, {"nodes": 10}, 5), 3)
    assert net.structure == " | ".join(d.describe() for d in dags)
    m = gen.measures(params, 5)
    gs = [graph(10, graphs.sub_seed(5, s)) for s in range(params["stages"])]
    assert m["C"] == pytest.approx(np.mean([graphs.clustering(g) for g in gs]))
    assert m["L"] == pytest.approx(np.mean([graphs.path_length(g) for g in gs]))


def test_node_is_sigmoid_weighted_sum_then_relu_sepconv_bn():
    torch.manual_seed(0)
    node = Node(2, 4, 4, 1).eval()
    with torch.no_grad():
        node.weights.copy_(torch.tensor([0.3, -1.2]))
    a, b = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    w = torch.sigmoid(torch.tensor([0.3, -1.2]))
    expect = node.op.bn(node.op.pw(node.op.dw(torch.relu(w[0] * a + w[1] * b))))
    assert torch.allclose(node([a, b]), expect, atol=1e-6)


def test_stage_output_averages_sinks_and_sources_read_input():
    dag = graphs.DAG(3, ((), (0,), ()))  # sources 0 and 2, sinks 1 and 2
    stage = RandomStage(dag, 3, 4, 2).eval()
    x = torch.randn(1, 3, 8, 8)
    o0 = stage.nodes[0]([x])
    expect = (stage.nodes[1]([o0]) + stage.nodes[2]([x])) / 2
    assert torch.allclose(stage(x), expect, atol=1e-6)
    assert stage(x).shape == (1, 4, 4, 4)


def test_sampling_respects_fixed_nodes_and_bounds():
    rng = np.random.default_rng(0)
    for name, key, ok in (("randwire-ws", "k", lambda v, n: v % 2 == 0 and v < n),
                          ("randwire-ba", "m", lambda v, n: 1 <= v < n),
                          ("randwire-er", "p", lambda v, n: 0.1 <= v <= 0.5)):
        gen = get_generator(name)
        for _ in range(30):
            p = gen.sample_params(rng, {"nodes": 5})
            assert p["nodes"] == 5 and ok(p[key], 5)
            build(ArchSpec(name, p, 1), 1)
        assert gen.sample_params(rng, {key: gen.defaults[key]})[key] == gen.defaults[key]


def test_bad_randwire_params_are_user_errors():
    with pytest.raises(UserError, match="stem"):
        build(ArchSpec("randwire-er", {"stem": "huge"}), 3)
    with pytest.raises(UserError, match="graph"):
        build(ArchSpec("randwire-ws", {"nodes": 4, "k": 4}), 3)
    with pytest.raises(UserError, match="graph"):
        build(ArchSpec("randwire-ba", {"nodes": 4, "m": 4}), 3)
    with pytest.raises(UserError, match="unknown parameter"):
        build(ArchSpec("randwire-ba", {"k": 4}), 3)


def test_imagenet_stem_downsamples_by_four_before_the_stages():
    net = build(ArchSpec("randwire-ws", {"stem": "imagenet", "nodes": 6, "channels": 8}), 3)
    assert net.stem(torch.randn(1, 3, 64, 64)).shape == (1, 8, 16, 16)
    assert net.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 32, 2, 2)
    small = build(ArchSpec("randwire-ws", {"nodes": 6, "channels": 8}), 3)
    assert small.forward_features(torch.randn(1, 3, 32, 32)).shape == (1, 32, 8, 8)
