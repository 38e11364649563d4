"""Constraint sets X with a linear-optimisation oracle and an exact projection, batched over workers.

Every function takes ``(workers, dim)`` tensors (one row per worker) and treats rows independently
with the same arithmetic whatever the number of rows, so one process holding all workers and one
process per worker compute identical numbers.

    lo(g)       argmin_{v in X} <g, v>              (the projection-free methods' only access to X)
    project(c)  argmin_{x in X} ||x - c||           (for the exact-projection baselines and F*)

l1 ball of radius rho: LO = -rho sign(g_j) e_j with j = argmax |g_j|; projection by sorting
(Duchi, Shalev-Shwartz, Singer, Chandra, ICML 2008). Nuclear-norm ball of rows reshaped to
(p, q): LO = -rho u_1 v_1^T from the top singular pair of g; projection = l1 projection of the
singular values.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def _l1_project_rows(c: torch.Tensor, rho: float) -> torch.Tensor:
    """Euclidean projection of each row of ``c`` onto {||x||_1 <= rho}."""
    a = c.abs()
    inside = a.sum(dim=-1, keepdim=True) <= rho
    u, _ = torch.sort(a, dim=-1, descending=True)
    css = torch.cumsum(u, dim=-1) - rho
    k = torch.arange(1, c.shape[-1] + 1, device=c.device, dtype=c.dtype)
    cond = u - css / k > 0
    last = cond.to(torch.int64).cumsum(-1).argmax(-1, keepdim=True)  # last index where cond holds
    theta = css.gather(-1, last) / (last + 1).to(c.dtype)
    x = torch.sign(c) * torch.clamp(a - theta, min=0)
    return torch.where(inside, c, x)


@dataclass(frozen=True)
class L1Ball:
    radius: float

    def lo(self, g: torch.Tensor) -> torch.Tensor:
        j = g.abs().argmax(dim=-1, keepdim=True)
        return torch.zeros_like(g).scatter_(-1, j, g.gather(-1, j).sign_().mul_(-self.radius))

    def project(self, c: torch.Tensor) -> torch.Tensor:
        return _l1_project_rows(c, self.radius)

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        return x.abs().sum(dim=-1)

    @property
    def diameter(self) -> float:
        return 2.0 * self.radius


@dataclass(frozen=True)
class NuclearBall:
    radius: float
    shape: tuple[int, int]

    def _mat(self, x):
        return x.reshape(*x.shape[:-1], *self.shape)

    def lo(self, g: torch.Tensor) -> torch.Tensor:
        U, _, Vh = torch.linalg.svd(self._mat(g), full_matrices=False)
        top = U[..., :, :1] @ Vh[..., :1, :]
        return (-self.radius * top).reshape(g.shape)

    def project(self, c: torch.Tensor) -> torch.Tensor:
        U, s, Vh = torch.linalg.svd(self._mat(c), full_matrices=False)
        s = _l1_project_rows(s, self.radius)
        return ((U * s.unsqueeze(-2)) @ Vh).reshape(c.shape)

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        return torch.linalg.matrix_norm(self._mat(x), ord="nuc")

    @property
    def diameter(self) -> float:
        return 2.0 * self.radius


@dataclass(frozen=True)
class Unconstrained:
    """X = R^d: projection is the identity; there is no LO oracle (the set is unbounded)."""

    def lo(self, g):
        from reprolab.checks import ConfigError

        raise ConfigError("X = R^d has no linear-optimisation oracle (unbounded); use problem.constraint.kind=l1 "
                         "or nuclear with projection-free methods, or method.inner=exact.")

    def project(self, c):
        return c

    def norm(self, x):
        return torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)

    @property
    def diameter(self) -> float:
        return float("inf")
