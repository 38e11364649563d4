"""Communication graphs of decentralised problems: ring, 2-D grid, complete, Erdős–Rényi.

A `Graph` keeps each worker's neighbours sorted, which fixes the order of every neighbour sum:
the simulated and the distributed backends add the same numbers in the same order and so agree
bit for bit. Laplacian ``L_G = Deg - Adj``; Metropolis weights
``W_ij = 1 / (1 + max(deg_i, deg_j))`` for edges, ``W_ii = 1 - sum_j W_ij`` (doubly stochastic).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from reprolab.checks import ConfigError

KINDS = ("ring", "grid", "complete", "erdos_renyi")


@dataclass(frozen=True)
class Graph:
    """Undirected graph on workers 0..m-1; ``neighbors[i]`` sorted, no self loops."""

    neighbors: tuple[tuple[int, ...], ...]
    name: str

    @property
    def m(self) -> int:
        return len(self.neighbors)

    @property
    def degree(self) -> np.ndarray:
        return np.array([len(n) for n in self.neighbors])

    def adjacency(self) -> np.ndarray:
        A = np.zeros((self.m, self.m))
        for i, nb in enumerate(self.neighbors):
            A[i, list(nb)] = 1.0
        return A

    def laplacian(self) -> np.ndarray:
        return np.diag(self.degree.astype(float)) - self.adjacency()

    def laplacian_norm(self) -> float:
        """||L_G||_2, the largest Laplacian eigenvalue (ring of m >= 3 even: 4)."""
        return float(np.linalg.eigvalsh(self.laplacian())[-1])

    def metropolis(self) -> tuple[np.ndarray, np.ndarray]:
        """(self weights (m,), neighbour weights (m, max_deg) aligned with ``neighbors``, 0-padded)."""
        deg = self.degree
        width = max(1, int(deg.max()))
        W = np.zeros((self.m, width))
        for i, nb in enumerate(self.neighbors):
            for s, j in enumerate(nb):
                W[i, s] = 1.0 / (1 + max(deg[i], deg[j]))
        return 1.0 - W.sum(axis=1), W

    def components(self) -> list[list[int]]:
        seen, comps = set(), []
        for s in range(self.m):
            if s in seen:
                continue
            comp, stack = [], [s]
            seen.add(s)
            while stack:
                i = stack.pop()
                comp.append(i)
                for j in self.neighbors[i]:
                    if j not in seen:
                        seen.add(j)
                        stack.append(j)
            comps.append(sorted(comp))
        return comps


def _from_edges(m: int, edges, name: str) -> Graph:
    nb = [set() for _ in range(m)]
    for i, j in edges:
        if i != j:
            nb[i].add(j)
            nb[j].add(i)
    return Graph(tuple(tuple(sorted(s)) for s in nb), name)


def _grid_shape(m: int) -> tuple[int, int]:
    rows = int(math.isqrt(m))
    while m % rows:
        rows -= 1
    return rows, m // rows


def make_graph(kind: str, m: int, p: float = 0.3, seed: int = 0) -> Graph:
    """A connected graph on m workers, or a `ConfigError` naming the fix.

    grid: rows x cols with rows the largest divisor of m not above sqrt(m) (m = 8: 2 x 4).
    erdos_renyi: each edge independently with probability p, from ``default_rng(seed)``.
    """
    if kind not in KINDS:
        raise ConfigError(f"problem.graph.kind={kind!r} is not one of {list(KINDS)}.")
    if not (isinstance(m, int) and m >= 1):
        raise ConfigError(f"problem.workers={m!r} is out of range: it must be an integer >= 1.")
    if kind == "ring":
        edges = [(i, (i + 1) % m) for i in range(m)] if m > 1 else []
    elif kind == "complete":
        edges = [(i, j) for i in range(m) for j in range(i + 1, m)]
    elif kind == "grid":
        rows, cols = _grid_shape(m)
        edges = [(r * cols + c, r * cols + c + 1) for r in range(rows) for c in range(cols - 1)]
        edges += [(r * cols + c, (r + 1) * cols + c) for r in range(rows - 1) for c in range(cols)]
    else:
        if not 0 < p <= 1:
            raise ConfigError(f"problem.graph.p={p!r} is out of range: an edge probability in (0, 1].")
        u = np.random.default_rng(seed).random((m, m))
        edges = [(i, j) for i in range(m) for j in range(i + 1, m) if u[i, j] < p]
    name = f"{kind}(p={p}, seed={seed})" if kind == "erdos_renyi" else kind
    g = _from_edges(m, edges, name)
    comps = g.components()
    if len(comps) > 1:
        raise ConfigError(
            f"graph {name} on {m} workers is disconnected ({len(comps)} components, e.g. {comps[:3]}): consensus is "
            "impossible. Raise problem.graph.p, change problem.graph.seed, or pick problem.graph.kind=ring.")
    return g
