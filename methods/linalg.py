"""Orthonormal bases for the methods' power iterations (COSMOS's subspace, GEAR's low-rank factors).

    from methods.linalg import orthonormal_basis
    Q = orthonormal_basis(Z)          # Z (n, r) or a batch (..., n, r), n >= r -> Q, same shape

Both methods only need Q of the thin QR Z = QR (the official codes call `torch.linalg.qr`), and
their results do not depend on Q's column signs. On CUDA, `torch.linalg.qr` of a batch runs one
cuSOLVER ``orgqr`` (and a workspace allocation) per matrix (pytorch/pytorch#143281, open with
torch 2.13: 1,024 small matrices take 26 ms; our first COSMOS GPU profile: 270 us and 3
device-to-host copies per 768 x 64 matrix), so ``auto`` uses CholeskyQR2 there (batched GEMMs,
Cholesky and triangular solves), falling back to Householder where it cannot serve, and
Householder (LAPACK, faster for these shapes) on the CPU. benchmarks/gpu_cosmos.py times both
on a GPU.

`householder_qr` also returns the whole n x n orthogonal factor of the Householder QR, in compact
WY form (`CompactWY`): COSMOS runs Newton-Schulz in the orthogonal complement of its basis with it.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

QR_METHODS = ("auto", "householder", "cholesky_qr2")
ORTHONORMAL_TOL = 1e-6  # max |Q^T Q - I| (in fp64) accepted from CholeskyQR2 before falling back


def cholesky_qr2(Z: torch.Tensor) -> torch.Tensor | None:
    """Q of the thin QR Z = QR by two Cholesky QR passes with fp64 Gram matrices and solves.

    The same Q as Householder QR in exact arithmetic up to column signs (R's diagonal is positive
    here). None when Z is too ill-conditioned for it (a failed factorisation, or Q not orthonormal
    to ``ORTHONORMAL_TOL``: e.g. Z rank-deficient, as for a matrix whose gradients were zero); one
    host sync for that check.
    """
    Q = Z.double()
    for _ in range(2):
        L = torch.linalg.cholesky_ex(Q.mT @ Q).L
        Q = torch.linalg.solve_triangular(L.mT, Q, upper=True, left=False)
    eye = torch.eye(Q.shape[-1], dtype=Q.dtype, device=Q.device)
    ok = torch.isfinite(Q).all() & ((Q.mT @ Q - eye).abs().amax() < ORTHONORMAL_TOL)
    return Q.to(Z.dtype) if ok else None


def orthonormal_basis(Z: torch.Tensor, method: str = "auto") -> torch.Tensor:
    """Q of the thin QR of Z (n, r) or of each matrix of a batch (..., n, r).

    ``householder``: `torch.linalg.qr`. ``cholesky_qr2``: `cholesky_qr2`, Householder where it
    declines. ``auto``: cholesky_qr2 on CUDA, householder elsewhere (module docstring).
    """
    if method not in QR_METHODS:
        raise ValueError(f"qr={method!r} is not one of {QR_METHODS}.")
    if method == "cholesky_qr2" or (method == "auto" and Z.is_cuda):
        Q = cholesky_qr2(Z)
        if Q is not None:
            return Q
    return torch.linalg.qr(Z, mode="reduced").Q


class CompactWY(NamedTuple):
    """The orthogonal factor Q = H_1 ... H_r = I - Y T Y^T (n x n) of a Householder QR of an n x r
    matrix, in compact WY form (Schreiber and Van Loan 1989), or one per matrix of a batch.

    Q's first r columns are the thin QR factor; its last n - r columns an orthonormal basis of the
    complement of their span. Q is never formed: `apply` takes X Q (or X Q^T) in two rank-r GEMMs.
    """

    Y: torch.Tensor  # (..., n, r) the Householder vectors, unit lower trapezoidal
    T: torch.Tensor  # (..., r, r) upper triangular

    def apply(self, X: torch.Tensor, transpose: bool = False) -> torch.Tensor:
        """X <- X Q (or X Q^T) in place, for X (..., m, n) with the batch shape of Y; returns X."""
        T = self.T.mT if transpose else self.T
        if X.dim() == 3:  # bmm/baddbmm: no broadcasting views (the optimizers' batches)
            return X.baddbmm_(torch.bmm(torch.bmm(X, self.Y), T), self.Y.mT, alpha=-1)
        return X.sub_(X @ self.Y @ T @ self.Y.mT)


def householder_qr(Z: torch.Tensor) -> tuple[torch.Tensor, CompactWY]:
    """Householder QR of Z (n, r) or of each matrix of a batch (..., n, r), n >= r: the thin factor Q
    (same shape as Z: `torch.linalg.qr`'s) and the whole orthogonal factor in compact WY form.

    LAPACK/cuSOLVER ``geqrf``, then T in closed form instead of LAPACK's column-by-column recurrence:
    T^-1 = diag(1 / tau) + striu(Y^T Y) (Puglisi 1992; Joffrain et al. 2006), taken as
    T = (I + diag(tau) striu(Y^T Y))^-1 diag(tau), a unit-triangular solve that also holds where
    geqrf leaves a reflector out (tau = 0, H_i = I).
    """
    reflectors, tau = torch.geqrf(Z)
    Y = reflectors.tril(-1)
    Y.diagonal(dim1=-2, dim2=-1).fill_(1)
    T = torch.linalg.solve_triangular(tau.unsqueeze(-1) * (Y.mT @ Y), torch.diag_embed(tau), upper=True,
                                      unitriangular=True)
    return torch.linalg.householder_product(reflectors, tau), CompactWY(Y, T)
