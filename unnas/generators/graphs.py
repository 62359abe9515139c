"""Random graphs (networkx), their conversion to DAGs, and graph measures. All seeded, pure."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np


def ws(n: int, k: int, p: float, seed: int | None = None) -> nx.Graph:
    """Watts-Strogatz small-world graph: ring lattice of degree ``k`` (even), rewired with prob. ``p``."""
    if k % 2 or k >= n:
        raise ValueError(f"WS needs an even k < n, got n={n}, k={k}")
    return nx.connected_watts_strogatz_graph(n, k, p, tries=100, seed=seed)


@dataclass(frozen=True)
class DAG:
    """A DAG on nodes ``0..n-1`` with edges oriented low -> high index.

    ``preds[i]`` lists node i's predecessors; ``sources`` (no predecessors) read the stage input
    and ``sinks`` (no successors) are averaged into the stage output.
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
    """Average clustering coefficient C."""
    return float(nx.average_clustering(g))


def path_length(g: nx.Graph) -> float:
    """Average shortest-path length L (over the largest connected component if disconnected)."""
    if not nx.is_connected(g):
        g = g.subgraph(max(nx.connected_components(g), key=len))
    return float(nx.average_shortest_path_length(g)) if g.number_of_nodes() > 1 else 0.0


def sub_seed(seed: int, *keys: int) -> int:
    """A derived seed for one part of a spec (one stage, one cell), independent of the others."""
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])
