"""Decentralised finite sums ``F(x) = sum_i f_i(x)`` over m workers on a graph, x in a ball X.

Worker i holds samples S_i and ``f_i(x) = sum_{s in S_i} w_s loss(a_s^T x, y_s)``:

    least_squares  loss(z, y) = (z - y)^2 / 2,      w_s = 1      (spec §5: f_i = 1/2 ||A_i x - b_i||^2)
    logistic       loss(z, y) = log(1 + e^{-y z}),  w_s = 1/N    (F = mean loss over the whole data set)

Arrays carry a leading axis over the workers this process holds: A (k, n_max, d), y and w
(k, n_max), with zero-weight padding rows when shards differ in size. Every process builds the
whole data set from the same seed, computes the global constants (L = max_i L_i, L_F) and keeps
only its own shards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from methods.pd_sliding.graphs import Graph



def _loss_and_slope(z: torch.Tensor, y: torch.Tensor, loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    if loss == "least_squares":
        r = z - y
        return 0.5 * r * r, r
    t = -y * z
    return torch.nn.functional.softplus(t), -y * torch.sigmoid(t)


@dataclass
class Reference:
    """A high-accuracy solution of min_{x in X} F(x): F* and a certificate F(x*) - F* <= fw_gap."""

    f_star: float
    x_star: torch.Tensor
    fw_gap: float
    iterations: int


@dataclass
class FiniteSumProblem:
    """The data this process owns plus the global facts every solver needs (see module docstring)."""

    loss: str
    A: torch.Tensor                 # (k, n_max, d)
    y: torch.Tensor                 # (k, n_max)
    w: torch.Tensor                 # (k, n_max), 0 on padding rows
    counts: torch.Tensor            # (k,) real samples per local worker
    workers: list[int]              # global worker ids of the rows
    graph: Graph
    X: object                       # constraint set (methods.pd_sliding.oracles)
    L: float                        # max_i L_i (smoothness of each f_i)
    L_total: float                  # smoothness of F = sum_i f_i
    min_count: int                  # fewest samples on any worker (mini-batches cap there)
    name: str
    seed: int
    reference: Optional[Reference] = field(default=None, repr=False)

    @property
    def m(self) -> int:
        return self.graph.m

    @property
    def dim(self) -> int:
        return self.A.shape[-1]

    @staticmethod
    def _products(A, x):
        """(k, n): A_r x_r row by row. A batched bmm rounds differently for different batch sizes;
        one matrix-vector product per worker is the same call in every backend (bit-identical)."""
        return torch.stack([A[r] @ x[r] for r in range(len(x))])

    def _grad_rows(self, A, y, w, x):
        _, slope = _loss_and_slope(self._products(A, x), y, self.loss)
        s = w * slope
        return torch.stack([A[r].T @ s[r] for r in range(len(x))])

    def grad(self, x: torch.Tensor) -> torch.Tensor:
        """(k, d): grad f_i(x_i) for each local worker i (row)."""
        return self._grad_rows(self.A, self.y, self.w, x)

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """(k,): f_i(x_i)."""
        val, _ = _loss_and_slope(self._products(self.A, x), self.y, self.loss)
        return (self.w * val).sum(dim=-1)

    def generators(self) -> list[torch.Generator]:
        """One sampling stream per local worker, seeded by (seed, global worker id)."""
        return [torch.Generator().manual_seed(1_000_003 * self.seed + 7919 * i + 17) for i in self.workers]

    def stochastic_grad(self, x: torch.Tensor, batch: int, gens: list[torch.Generator]) -> tuple[torch.Tensor, int]:
        """(unbiased mini-batch estimate of grad f_i(x_i) per row, samples drawn per worker).

        ``batch`` samples drawn uniformly with replacement from the worker's own shard, scaled by
        n_i / batch. At ``batch >= min_count`` the exact gradient is returned (spec §7: cap the
        growing batches at the local data set size).
        """
        if batch >= self.min_count:
            return self.grad(x), self.min_count
        u = torch.stack([torch.rand(batch, generator=g, dtype=torch.float64) for g in gens]).to(self.A.device)
        idx = (u * self.counts.to(u).unsqueeze(-1)).long()
        rows = torch.arange(len(gens), device=self.A.device).unsqueeze(-1)
        scale = (self.counts.to(self.A.dtype) / batch).unsqueeze(-1)
        return self._grad_rows(self.A[rows, idx], self.y[rows, idx], self.w[rows, idx] * scale, x), batch
