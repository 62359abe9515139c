"""Random graphs (networkx), their conversion to DAGs, and graph measures. All seeded, pure.

Every generator takes an integer ``seed`` and draws only from a private RNG built from it
(networkx's ``seed=`` argument, or ``random.Random(seed)``), never from global random state:
the same arguments always give the same graph. Nodes are ``0..n-1``.

* :func:`er` -- Erdos-Renyi G(n, P): every one of the ``n(n-1)/2`` pairs is an edge with
  probability ``P`` (expected edges ``P n (n-1) / 2``).
* :func:`ba` -- Barabasi-Albert BA(n, M): start from ``M`` nodes, attach each new node to ``M``
  existing nodes by preferential attachment (exactly ``M (n - M)`` edges).
* :func:`ws` -- Watts-Strogatz WS(n, K, P): ring lattice, every node joined to its ``K``
  nearest neighbours (``K`` even), each edge rewired with probability ``P``; redrawn until
  connected (networkx's ``connected_watts_strogatz_graph``).
* :func:`ws_flex` -- WS-flex(n, k, p) of "Graph structure of neural networks" (You et al.
  2020): ``k`` is a real average degree; ``round(n k / 2)`` edges are shared as evenly as
  possible among the nodes, node ``i`` joining its next ``count[i]`` ring neighbours, then every
  edge is rewired with probability ``p``; redrawn until connected.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import networkx as nx
import numpy as np


def er(n: int, p: float, seed: int | None = None) -> nx.Graph:
    """Erdos-Renyi G(n, P) graph (may be disconnected)."""
    if n < 1 or not 0.0 <= p <= 1.0:
        raise ValueError(f"ER needs n >= 1 and 0 <= P <= 1, got n={n}, P={p}")
    return nx.gnp_random_graph(n, p, seed=seed)


def ba(n: int, m: int, seed: int | None = None) -> nx.Graph:
    """Barabasi-Albert graph BA(n, M) (connected, ``M (n - M)`` edges)."""
    if not 1 <= m < n:
        raise ValueError(f"BA needs 1 <= M < n, got n={n}, M={m}")
    return nx.barabasi_albert_graph(n, m, seed=seed)


def ws(n: int, k: int, p: float, seed: int | None = None) -> nx.Graph:
    """Watts-Strogatz small-world graph: ring lattice of degree ``k`` (even), rewired with prob. ``p``."""
    if k % 2 or k >= n or k < 2:
        raise ValueError(f"WS needs an even 2 <= K < n, got n={n}, K={k}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"WS needs 0 <= P <= 1, got P={p}")
    return nx.connected_watts_strogatz_graph(n, k, p, tries=100, seed=seed)


def _even_counts(total: int, n: int) -> list[int]:
    """``total`` split over ``n`` slots, the first ``total % n`` slots one larger."""
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def _ws_flex_once(n: int, k: float, p: float, rng: random.Random) -> nx.Graph:
    count = _even_counts(int(round(k * n / 2)), n)
    g = nx.Graph()
    g.add_nodes_from(range(n))
    for i in range(n):
        g.add_edges_from((i, (i + j) % n) for j in range(1, count[i] + 1))
    for i in range(n):
        for j in range(1, count[i] + 1):
            v = (i + j) % n
            if rng.random() >= p or not g.has_edge(i, v):
                continue
            if g.degree(i) >= n - 1:
                continue  # i is joined to every node: nothing to rewire to
            w = rng.randrange(n)
            while w == i or g.has_edge(i, w):
                w = rng.randrange(n)
            g.remove_edge(i, v)
            g.add_edge(i, w)
    return g


def ws_flex(n: int, k: float, p: float, seed: int | None = None, tries: int = 100) -> nx.Graph:
    """WS-flex graph with real-valued average degree ``k`` in ``[2, n - 1]`` (connected).

    The edge count is exactly ``round(n k / 2)``; ``k = n - 1`` gives the complete graph.
    """
    if n < 3 or not 2.0 <= k <= n - 1 or not 0.0 <= p <= 1.0:
        raise ValueError(f"WS-flex needs n >= 3, 2 <= k <= n-1, 0 <= p <= 1, got n={n}, k={k}, p={p}")
    rng = random.Random(seed)
    for _ in range(tries):
        g = _ws_flex_once(n, float(k), float(p), rng)
        if nx.is_connected(g):
            return g
    raise ValueError(f"no connected WS-flex graph with n={n}, k={k}, p={p} in {tries} tries")


@dataclass(frozen=True)
class DAG:
    """A DAG on nodes ``0..n-1`` with edges oriented low -> high index.

    ``preds[i]`` lists node i's predecessors; ``sources`` (no predecessors) read the stage input
    and ``sinks`` (no successors) are averaged into the stage output. :meth:`to_networkx` adds
    the unique input and output nodes explicitly.
    """

    n: int
    preds: tuple[tuple[int, ...], ...]

    @property
    def sources(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.n) if not self.preds[i])

    @property
    def sinks(self) -> tuple[int, ...]:
        has_succ = {j for i in range(self.n) for j in self.preds[i]}
        return tuple(i for i in range(self.n) if i not in has_succ)

    @property
    def edges(self) -> list[tuple[int, int]]:
        return [(j, i) for i in range(self.n) for j in self.preds[i]]

    def to_networkx(self) -> nx.DiGraph:
        """The DAG with one input node ``"in"`` feeding every source and one output node
        ``"out"`` fed by every sink (RandWire's unique input and output nodes)."""
        g = nx.DiGraph()
        g.add_nodes_from(range(self.n))
        g.add_edges_from(self.edges)
        g.add_edges_from(("in", i) for i in self.sources)
        g.add_edges_from((i, "out") for i in self.sinks)
        return g

    def describe(self) -> str:
        """A compact, canonical text form: ``n:edge,edge,...``."""
        return f"{self.n}:" + ",".join(f"{a}-{b}" for a, b in sorted(self.edges))


def to_dag(g: nx.Graph) -> DAG:
    """Orient every edge from the lower to the higher node index (RandWire)."""
    nodes = sorted(g.nodes)
    pos = {v: i for i, v in enumerate(nodes)}
    preds: list[list[int]] = [[] for _ in nodes]
    for u, v in g.edges:
        a, b = sorted((pos[u], pos[v]))
        if a != b:
            preds[b].append(a)
    return DAG(len(nodes), tuple(tuple(sorted(set(p))) for p in preds))


def clustering(g: nx.Graph) -> float:
    """Average clustering coefficient C (nodes of degree < 2 count as 0, as in networkx)."""
    return float(nx.average_clustering(g))


def path_length(g: nx.Graph) -> float:
    """Average shortest-path length L (over the largest connected component if disconnected)."""
    if not nx.is_connected(g):
        g = g.subgraph(max(nx.connected_components(g), key=len))
    return float(nx.average_shortest_path_length(g)) if g.number_of_nodes() > 1 else 0.0


def sub_seed(seed: int, *keys: int) -> int:
    """A derived seed for one part of a spec (one stage, one cell), independent of the others."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])
