"""Factorisation problems with exact condition number, rank and width (float64 by default).

Both problems are ``min_{X, Y} f(X, Y) = 1/2 ||X Y^T D - B||_F^2`` with X (m x d), Y (n x d):
matrix factorisation has D = I and B = A (m x n); the two-layer linear network W1 W2 D with
W1 = X, W2 = Y^T has data D (n_in x N) and labels B = W* D (m x N). Gradients:
``grad_X = R D^T Y``, ``grad_Y = D R^T X`` with R = X Y^T D - B.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch


def haar(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A Haar-distributed matrix with orthonormal columns (QR of a Gaussian, signs of R fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.sign(np.diag(r))


def spectrum(r: int, kappa: float) -> np.ndarray:
    """r singular values geometric from 1 down to 1/kappa: sigma_1 / sigma_r = kappa exactly."""
    return np.geomspace(1.0, 1.0 / kappa, r)


def low_rank(rng: np.random.Generator, rows: int, cols: int, r: int, kappa: float) -> tuple[np.ndarray, np.ndarray]:
    """U diag(sigma) V^T (U drawn before V) and sigma."""
    u, v = haar(rng, rows, r), haar(rng, cols, r)
    s = spectrum(r, kappa)
    return (u * s) @ v.T, s


@dataclass
class FactorizationProblem:
    """``1/2 ||X Y^T D - B||_F^2``; ``D is None`` means the identity (matrix factorisation).

    B: (m, N) target. D: (n, N) data or None (then n = N). sigma: the r singular values of the
    rank-r factor (A or W*). data_sv: (sigma_1(D), smallest non-zero sigma(D)), (1, 1) for D = I.
    """

    B: torch.Tensor
    D: Optional[torch.Tensor]
    r: int
    d: int
    sigma: np.ndarray
    data_sv: tuple[float, float]
    name: str

    @property
    def m(self) -> int:
        return self.B.shape[0]

    @property
    def n(self) -> int:
        return self.B.shape[1] if self.D is None else self.D.shape[0]

    @property
    def kappa(self) -> float:
        return float(self.sigma[0] / self.sigma[-1])

    def residual(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """R = X Y^T D - B, (m, N)."""
        if self.D is None:
            return torch.addmm(self.B, X, Y.T, beta=-1)
        return torch.addmm(self.B, X, Y.T @ self.D, beta=-1)

    def step_x(self, X, Y, R, eta: float) -> torch.Tensor:
        """X - eta grad_X = X - eta R D^T Y."""
        return torch.addmm(X, R, Y if self.D is None else self.D.T @ Y, alpha=-eta)

    def step_y(self, X, Y, R, eta: float) -> torch.Tensor:
        """Y - eta grad_Y = Y - eta D R^T X."""
        if self.D is None:
            return torch.addmm(Y, R.T, X, alpha=-eta)
        return torch.addmm(Y, self.D, R.T @ X, alpha=-eta)



def _tensor(a: np.ndarray, device, dtype) -> torch.Tensor:
    return torch.as_tensor(a, dtype=dtype, device=device)


def matrix_factorization(spec, device="cpu", dtype=torch.float64) -> FactorizationProblem:
    """A = U diag(sigma) V^T (m x n, rank r, condition number kappa) from default_rng(spec.seed)."""
    A, s = low_rank(np.random.default_rng(spec.seed), spec.m, spec.n, spec.r, spec.kappa)
    return FactorizationProblem(B=_tensor(A, device, dtype), D=None, r=spec.r, d=spec.d, sigma=s,
                                data_sv=(1.0, 1.0), name="matrix_factorization")


def linear_net(spec, device="cpu", dtype=torch.float64) -> FactorizationProblem:
    """W* (m x n_in, rank r, condition kappa), D (n_in x samples) ~ N(0, 1/samples), labels W* D."""
    rng = np.random.default_rng(spec.seed)
    W, s = low_rank(rng, spec.m, spec.n_in, spec.r, spec.kappa)
    D = rng.standard_normal((spec.n_in, spec.samples)) / np.sqrt(spec.samples)
    sv = np.linalg.svd(D, compute_uv=False)
    return FactorizationProblem(B=_tensor(W @ D, device, dtype), D=_tensor(D, device, dtype), r=spec.r, d=spec.d,
                                sigma=s, data_sv=(float(sv[0]), float(sv[min(D.shape) - 1])), name="linear_net")
