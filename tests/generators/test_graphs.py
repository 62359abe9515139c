"""Random graphs, DAG conversion and graph measures against known answers."""

import random

import networkx as nx
import numpy as np
import pytest

from unnas.generators import graphs


def test_er_edge_count_matches_expectation_over_seeds():
    n, p, seeds = 20, 0.3, 400
    counts = np.array([graphs.er(n, p, seed=s).number_of_edges() for s in range(seeds)])
    pairs = n * (n - 1) // 2
    mean, var = p * pairs, pairs * p * (1 - p)  # binomial(190, 0.3): 57, 39.9
    # the sample mean of 400 binomials has sd sqrt(39.9 / 400) ~ 0.32; allow 4 sd
    assert abs(counts.mean() - mean) < 4 * np.sqrt(var / seeds)
    assert abs(counts.var(ddof=1) - var) < 0.25 * var


def test_ws_degree_is_k_on_average_and_edges_exact():
    n, k = 30, 4
    for s in range(50):
        g = graphs.ws(n, k, 0.5, seed=s)
        assert g.number_of_edges() == n * k // 2  # rewiring moves edges, never adds or drops them
        assert np.mean([d for _, d in g.degree]) == k
        assert nx.is_connected(g)
    # p = 0 is the ring lattice itself: every degree is exactly k
    assert {d for _, d in graphs.ws(n, k, 0.0, seed=1).degree} == {k}


def test_ba_edges_exact():
    for s in range(10):
        g = graphs.ba(16, 3, seed=s)
        assert g.number_of_edges() == 3 * (16 - 3)
        assert nx.is_connected(g)


@pytest.mark.parametrize("n,k", [(16, 2.0), (16, 4.5), (64, 7.3), (10, 9.0)])
def test_ws_flex_real_degree(n, k):
    for s in range(20):
        g = graphs.ws_flex(n, k, 0.3, seed=s)
        assert g.number_of_nodes() == n
        assert g.number_of_edges() == round(n * k / 2)
        assert nx.is_connected(g)
        assert nx.number_of_selfloops(g) == 0


def test_ws_flex_without_rewiring_is_the_extended_ring():
    # n = 8, k = 3: 12 edges; nodes 0..3 join their next 2 ring neighbours, nodes 4..7 their next 1
    g = graphs.ws_flex(8, 3.0, 0.0, seed=0)
    expected = {(0, 1), (0, 2), (1, 2), (1, 3), (2, 3), (2, 4), (3, 4), (3, 5), (4, 5), (5, 6), (6, 7), (0, 7)}
    assert {tuple(sorted(e)) for e in g.edges} == expected
    # k = n - 1 is the complete graph whatever p
    assert nx.is_isomorphic(graphs.ws_flex(9, 8.0, 0.7, seed=3), nx.complete_graph(9))


def test_graphs_are_seeded_and_pure():
    state_py, state_np = random.getstate(), np.random.get_state()
    for fn in (lambda s: graphs.er(12, 0.3, seed=s), lambda s: graphs.ba(12, 2, seed=s),
               lambda s: graphs.ws(12, 4, 0.5, seed=s), lambda s: graphs.ws_flex(12, 5.5, 0.5, seed=s)):
        a, b, c = fn(7), fn(7), fn(8)
        assert set(a.edges) == set(b.edges)
        assert set(a.edges) != set(c.edges)
    assert random.getstate() == state_py
    assert np.all(np.random.get_state()[1] == state_np[1])


def test_bad_graph_parameters_raise():
    for call in (lambda: graphs.ws(8, 3, 0.5), lambda: graphs.ws(8, 8, 0.5), lambda: graphs.ba(5, 5),
                 lambda: graphs.er(5, 1.5), lambda: graphs.ws_flex(8, 1.5, 0.1), lambda: graphs.ws_flex(8, 7.5, 0.1)):
        with pytest.raises(ValueError):
            call()


@pytest.mark.parametrize("make", [lambda s: graphs.er(16, 0.2, seed=s), lambda s: graphs.ba(16, 3, seed=s),
                                  lambda s: graphs.ws(16, 4, 0.75, seed=s)])
def test_dag_is_acyclic_with_one_input_and_one_output(make):
    for s in range(20):
        g = make(s)
        dag = graphs.to_dag(g)
        assert len(dag.edges) == g.number_of_edges()
        assert all(a < b for a, b in dag.edges)
        d = dag.to_networkx()
        assert nx.is_directed_acyclic_graph(d)
        assert [v for v in d if d.in_degree(v) == 0] == ["in"]
        assert [v for v in d if d.out_degree(v) == 0] == ["out"]
        # every node lies on a path from the input to the output
        assert all(nx.has_path(d, "in", v) and nx.has_path(d, v, "out") for v in range(dag.n))


def test_dag_hand_example():
    g = nx.Graph([(2, 0), (1, 2), (3, 1)])
    dag = graphs.to_dag(g)
    assert dag.preds == ((), (), (0, 1), (1,))
    assert dag.sources == (0, 1) and dag.sinks == (2, 3)


def test_clustering_and_path_length_known_graphs():
    # ring lattice n=12, k=4 (each node joined to 2 neighbours per side): C = 3(k-2)/(4(k-1)) = 1/2;
    # distances from a node: 4 nodes at 1, 4 at 2, 3 at 3 -> L = (4 + 8 + 9) / 11
    ring = nx.watts_strogatz_graph(12, 4, 0.0)
    assert graphs.clustering(ring) == pytest.approx(0.5)
    assert graphs.path_length(ring) == pytest.approx(21 / 11)
    # cycle n=10: no triangles; L = n^2 / (4 (n - 1)) for even n
    cyc = nx.cycle_graph(10)
    assert graphs.clustering(cyc) == 0.0
    assert graphs.path_length(cyc) == pytest.approx(100 / 36)
    k = nx.complete_graph(7)
    assert graphs.clustering(k) == 1.0 and graphs.path_length(k) == 1.0
    for g in (ring, cyc, k, graphs.ws_flex(20, 5.0, 0.4, seed=1)):
        assert graphs.clustering(g) == pytest.approx(nx.average_clustering(g))
        assert graphs.path_length(g) == pytest.approx(nx.average_shortest_path_length(g))


def test_path_length_uses_largest_component():
    g = nx.disjoint_union(nx.path_graph(4), nx.path_graph(2))  # path of 4: L = (3+2+1)*2 / 12 = 10/6
    assert graphs.path_length(g) == pytest.approx(10 / 6)


def test_sub_seed_is_stable_and_distinct():
    assert graphs.sub_seed(3, 0) == graphs.sub_seed(3, 0)
    assert len({graphs.sub_seed(3, i) for i in range(100)} | {graphs.sub_seed(4, 0)}) == 101
