"""Neighbour exchange for decentralised solvers: one process for all workers, or one per worker.

Solvers hold the rows of the workers this process owns (a leading axis of size m in the simulated
backend, 1 in the distributed one) and call:

    lap(v)    (L_G kron I) v:   deg_i v_i - sum_{j in N(i)} v_j
    mix(v)    (W kron I) v:     W_ii v_i + sum_{j in N(i)} W_ij v_j    (Metropolis weights)

Each call is one communication round (counted in ``rounds`` unless ``count=False``, which the
metrics use). Neighbour terms are added in the sorted order of `Graph.neighbors` in both
backends, so both compute identical floating-point numbers.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import timedelta

import torch

from methods.pd_sliding.graphs import Graph


class WorkerLost(RuntimeError):
    """A neighbour did not answer within the timeout (it died or hung)."""


class Network(ABC):
    def __init__(self, graph: Graph, device, dtype):
        self.graph = graph
        self.rounds = 0
        w_self, w_nb = graph.metropolis()
        self._deg = torch.as_tensor(graph.degree, dtype=dtype, device=device)
        self._w_self = torch.as_tensor(w_self, dtype=dtype, device=device)
        self._w_nb = torch.as_tensor(w_nb, dtype=dtype, device=device)

    @abstractmethod
    def sum_workers(self, t: torch.Tensor) -> torch.Tensor:
        """Sum of a per-worker tensor (leading axis) over all workers, on every process (not counted)."""

    @abstractmethod
    def lap(self, v: torch.Tensor, count: bool = True) -> torch.Tensor:
        """(L_G kron I) v for the local rows; one communication round unless ``count=False``."""

    @abstractmethod
    def mix(self, v: torch.Tensor, count: bool = True) -> torch.Tensor:
        """(W kron I) v (Metropolis) for the local rows; one communication round unless ``count=False``."""


class SimulatedNetwork(Network):
    """Every worker in this process: rows of ``v`` are workers 0..m-1."""

    def __init__(self, graph: Graph, device, dtype):
        super().__init__(graph, device, dtype)
        deg = graph.degree
        self._slots = int(deg.max()) if graph.m > 1 else 0
        self._idx = [torch.tensor([nb[s] if s < len(nb) else i for i, nb in enumerate(graph.neighbors)], device=device)
                     for s in range(self._slots)]
        self._has = [torch.tensor([s < len(nb) for nb in graph.neighbors], device=device).view(-1, 1)
                     for s in range(self._slots)]

    def sum_workers(self, t):
        return t.sum(dim=0, keepdim=True)

    # Neighbour slot s of every row at once (padded rows keep their value): the additions of each
    # row happen in the same order as in GlooNetwork, without a Python loop over workers.
    def lap(self, v, count: bool = True):
        self.rounds += count
        out = self._deg.view(-1, *([1] * (v.dim() - 1))) * v
        for s in range(self._slots):
            out = torch.where(self._has[s], out - v[self._idx[s]], out)
        return out

    def mix(self, v, count: bool = True):
        self.rounds += count
        shape = (-1, *([1] * (v.dim() - 1)))
        out = self._w_self.view(shape) * v
        for s in range(self._slots):
            out = torch.where(self._has[s], out + self._w_nb[:, s].view(shape) * v[self._idx[s]], out)
        return out


class GlooNetwork(Network):
    """One worker per process (rank = worker id); rows are exchanged with isend / irecv."""

    def __init__(self, graph: Graph, rank: int, device, dtype, timeout_s: float, all_reduce):
        super().__init__(graph, device, dtype)
        self.rank = rank
        self.timeout = timedelta(seconds=timeout_s)
        self._all_reduce = all_reduce
        self._exchanges = 0

    def lap(self, v, count: bool = True):
        self.rounds += count
        acc = self._deg[self.rank] * v[0]
        for u in self._exchange(v):
            acc = acc - u
        return acc.unsqueeze(0)

    def mix(self, v, count: bool = True):
        self.rounds += count
        acc = self._w_self[self.rank] * v[0]
        for s, u in enumerate(self._exchange(v)):
            acc = acc + self._w_nb[self.rank, s] * u
        return acc.unsqueeze(0)

    def _exchange(self, v) -> list[torch.Tensor]:
        """Send this worker's row to every neighbour, receive theirs (sorted neighbour order)."""
        import torch.distributed as dist

        mine = v[0].contiguous()
        nb = self.graph.neighbors[self.rank]
        bufs = [torch.empty_like(mine) for _ in nb]
        self._exchanges += 1
        works = [dist.isend(mine, j) for j in nb] + [dist.irecv(b, j) for b, j in zip(bufs, nb)]
        for w, peer in zip(works, list(nb) + list(nb)):
            try:
                w.wait(timeout=self.timeout)
            except Exception as e:
                raise WorkerLost(
                    f"worker {self.rank}: neighbour exchange {self._exchanges} with worker {peer} got no answer within "
                    f"{self.timeout.total_seconds():g} s (runner.timeout_s): worker {peer}, or a worker it waits on, "
                    f"died or hung ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        return bufs

    def sum_workers(self, t):
        return self._all_reduce(t.clone())
