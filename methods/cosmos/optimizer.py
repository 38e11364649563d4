"""COSMOS: hybrid of SOAP on a leading eigensubspace and Muon on its complement.

Liu, Xu, Zhang, Kang, Li, Liang, Chen, Zhao, "COSMOS: A Hybrid Adaptive Optimizer for
Memory-Efficient Training of LLMs", arXiv:2502.17410. Implements the 2026 official code
(lliu606/COSMOS `COSMOS_optim.py`), spec ../shared/papers/cosmos.md §2.4-§2.6.

For a matrix W (m x n, n = size(1) = input dim of nn.Linear) with gradient G, at step t:

  M_t = beta1 M_{t-1} + G                                  momentum, an unnormalised sum   (m x n)
  U_1 = top-r eigenvectors of G^T G;  S_1 = (1-beta2) (G U_1)^T (G U_1)                      (n x r, r x r)
  U_t = QR(beta2 U_{t-1} S_{t-1} + (1-beta2) G^T G U_{t-1})    one power step, every step
  S_t = beta2 T^T S_{t-1} T + (1-beta2) (G U_t)^T (G U_t),  T = U_{t-1}^T U_t
  V_t = beta2 V_{t-1} + (1-beta2) (G U_t)^2                                                  (m x r)
  Ghat = (G + beta1 M_t) / (1 + beta1 b1),  b1 = (1 - beta1^t) / (1 - beta1)    Nesterov mix
  A = [Ghat U_t / (sqrt(V_t) / sqrt(1 - beta2^t) + eps)] U_t^T            SOAP part, rank r
  R = Ghat - Ghat U_t U_t^T;  B = sqrt(mn) NS5(R) / (||NS5(R)||_F + eps)  Muon part, residual
  H = A + gamma B;  W <- W (1 - lr wd) - lr lr_ratio sqrt(mn) H / (||H||_F + eps)

so every matrix step has Frobenius norm lr * lr_ratio * sqrt(mn) (RMS lr * lr_ratio per entry).
Tensors outside the matrix branch (gains, biases, embeddings, the head: see `default_route` and
the ``use_cosmos`` group option) take an AdamW step with the full lr.

State per matrix (fp32): ``exp_avg`` M (m x n), ``basis`` U (n x r), ``gram`` S (r x r),
``exp_avg_sq`` V (m x r): mn + (m + n) r + r^2 elements (official keys: exp_avg, exp_avg_P,
exp_avg_GG, exp_avg_sq).

Deviations from the official code (``parity=True`` restores the ones that change results):
- ``p.grad`` is never modified (the official code mixes the momentum into it in place).
- nesterov=False uses Ghat = M_t / b1, the bias-corrected momentum the paper means; the official
  code uses G / b1, which drops the momentum (parity).
- The AdamW branch is torch.optim.AdamW with (beta1, beta2); the official one hard-codes a
  momentum coefficient 0.1 and the bias correction 1 - 0.9^t, which at beta1 = 0.95 gives
  embeddings and head about 2x the lr once the bias correction wears off (parity).
- When the residual vanishes (||R|| <= 1e-6 ||Ghat||, e.g. rank = min(m, n)) the Muon part is
  dropped: NS5 would otherwise blow rounding noise up to norm gamma sqrt(mn) (parity: kept).
- ||NS5(R)|| is accumulated in fp32 (the official code takes it in bf16). NS5 runs in bf16 on
  CUDA as in the official code, in fp32 on CPU (``ns_dtype``; bf16 GEMMs are emulated on CPUs).
- NS5 evaluates each step as Muon does, X <- a X + (b A + c A^2) X with A = X X^T, which for a
  k x n input (k <= n) costs k^3 + 2 k^2 n multiply-adds instead of the official 3 k^2 n of
  B = A X; X <- a X + b B + (c A) B. Equal in exact arithmetic, not bitwise (parity: official).
- U_1 comes from `eigh` of G^T G, not its SVD (parity: SVD): the same subspace, several times
  cheaper for the one-off n x n decomposition (n = 5461 for LLaMA-1B's down_proj).
- The QR of the power iteration runs as CholeskyQR2 on CUDA (``qr="auto"``, `methods.linalg`; the
  official code's `torch.linalg.qr` runs one cuSOLVER call per matrix there), Householder where
  CholeskyQR2 declines and on the CPU: the same basis up to column signs, which the update ignores.
- rank > min(m, n) is an error at construction (the official code crashes at step 1 for r > n).
- Same-shape matrices take the step as one batch (one set of GPU launches, not one per matrix;
  the state of a batch lives packed in one tensor per key, each parameter's entry a view of its
  slice); each matrix gets exactly what it would alone. Newton-Schulz runs as fused Triton
  kernels on CUDA, the rank-r GEMMs on cuBLAS, where each measured faster (kernels/cosmos).
The paper's own write-up of the update (EMA momentum without Nesterov, eps inside the square
root, a sqrt(n) normalisation: cosmos.md §2.4) differs from its code; we follow the code.
"""
from __future__ import annotations

import math

import torch

from kernels.cosmos import gemm_epilogue, newton_schulz5, ns_dtype_for, project_moments
from methods.linalg import QR_METHODS, orthonormal_basis
from methods.optim import (HybridOptimizer, adamw_, check_newton_schulz, init_packed, packed_state,
                          same_shape_batches, stack)

RESIDUAL_FLOOR = 1e-6  # relative ||R|| below which the Muon part is dropped (parity=False)
MAX_ROWS = 10_000  # the official shape rule: 2-D tensors with more rows go to AdamW


def top_eigenvectors(gram: torch.Tensor, r: int, method: str = "eigh") -> torch.Tensor:
    """The r leading eigenvectors (descending) of a symmetric PSD matrix (n, n) -> (n, r), or of each
    matrix of a batch (k, n, n) -> (k, n, r).

    ``eigh`` (symmetric solver, several times faster) or ``svd`` (its left singular vectors, what
    the official code computes: parity mode). Same subspace; column signs may differ, and the
    update is invariant to them (cosmos.md §6.7). float64 retry when the solver fails.
    """
    def solve(mat):
        if method == "svd":
            return torch.linalg.svd(mat, full_matrices=False).U[..., :r]
        return torch.linalg.eigh(mat).eigenvectors[..., -r:].flip(-1)

    try:
        return solve(gram).contiguous()
    except RuntimeError:
        return solve(gram.double()).to(gram.dtype).contiguous()


class RankError(ValueError):
    """``rank`` exceeds min(m, n) of a matrix-branch tensor; ``limit`` is the largest rank that fits."""

    def __init__(self, message: str, limit: int):
        super().__init__(message)
        self.limit = limit


class COSMOS(HybridOptimizer):
    """COSMOS optimizer (arXiv:2502.17410); the update is in the module docstring.

    Args:
        params: tensors or param groups. A group may set ``use_cosmos``: True (matrix branch; its
            tensors must be 2-D with min(m, n) >= rank), False (AdamW branch), or leave it unset
            to route by the official shape rule: 2-D with size(0) <= 10000 -> COSMOS, others ->
            AdamW. Route embeddings and the head explicitly when the vocabulary is small
            (`reprolab.params.matrix_branch_groups` does).
        lr: eta. The AdamW branch steps with lr, matrices with RMS lr * lr_ratio.
        betas: (beta1, beta2). beta2 drives U, S and V alike.
        eps: added outside the square root, and to the two Frobenius norms.
        weight_decay: decoupled, W <- W (1 - lr wd) (lr, not lr * lr_ratio, as in the official code).
        lr_ratio: rho, the hidden-matrix lr relative to lr.
        gamma: weight of the Muon part B (the official code hard-coded 0.2 before 2026).
        rank: r, the dimension of the adaptive subspace.
        nesterov: Nesterov mix of G and M (default on; see the module docstring for off).
        ns_steps, ns_dtype: Newton-Schulz steps (5) and dtype: None = bf16 on CUDA as in the official
            code, fp32 on CPU (`kernels.cosmos.ns_dtype_for`); or a dtype / "bfloat16" / "float32".
        parity: reproduce the official code's quirks (module docstring).
        backend: kernels for the hot GEMMs: None (auto, see `kernels.cosmos`), "torch", "triton".
        qr: the power iteration's orthonormalisation (`methods.linalg.orthonormal_basis`): "auto"
            (CholeskyQR2 on CUDA, where batched Householder QR runs per matrix; Householder on the
            CPU), "householder" (`torch.linalg.qr`, the official code's) or "cholesky_qr2". The same
            basis up to column signs, which the update does not depend on.

    Defaults are the official README's recommendation (lr 2e-3, betas (0.95, 0.95), lr_ratio 0.2,
    gamma 0.2, rank 64), with weight_decay 0 as in the paper's LLaMA runs (README: 0.1). The
    official constructor's own defaults differ: lr 1e-3, betas (0.9, 0.999), lr_ratio 0.1.
    """

    flag = "use_cosmos"

    def __init__(self, params, lr: float = 2e-3, betas=(0.95, 0.95), eps: float = 1e-8, weight_decay: float = 0.0,
                 *, lr_ratio: float = 0.2, gamma: float = 0.2, rank: int = 64, nesterov: bool = True,
                 ns_steps: int = 5, ns_dtype: torch.dtype | str | None = None, parity: bool = False,
                 backend: str | None = None, qr: str = "auto"):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, lr_ratio=lr_ratio, gamma=gamma,
                        rank=rank, nesterov=nesterov, ns_steps=ns_steps, ns_dtype=ns_dtype, parity=parity,
                        backend=backend, qr=qr)
        super().__init__(params, defaults)

    def default_route(self, p: torch.Tensor) -> bool:
        return p.dim() == 2 and p.size(0) <= MAX_ROWS

    def _check_group(self, group: dict, index: int) -> None:
        super()._check_group(group, index)
        where = f"COSMOS (param group {index})"
        if not group["use_cosmos"]:
            return
        rank = group["rank"]
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
            raise ValueError(f"{where}: rank={rank!r} must be a positive integer (the paper uses 64).")
        if not (isinstance(group["lr_ratio"], (int, float)) and group["lr_ratio"] > 0):
            raise ValueError(f"{where}: lr_ratio={group['lr_ratio']!r} must be > 0 (README: 0.2).")
        if not (isinstance(group["gamma"], (int, float)) and group["gamma"] >= 0):
            raise ValueError(f"{where}: gamma={group['gamma']!r} must be >= 0 (default 0.2).")
        check_newton_schulz(where, group)
        if group["qr"] not in QR_METHODS:
            raise ValueError(f"{where}: qr={group['qr']!r} is not one of {QR_METHODS}.")
        for p in group["params"]:
            if p.dim() != 2:
                raise ValueError(f"{where}: use_cosmos=True needs 2-D tensors, got shape {tuple(p.shape)}; "
                                 "put it in a group with use_cosmos=False (AdamW branch).")
        smallest = min(group["params"], key=lambda p: min(p.shape), default=None)
        if smallest is not None and rank > min(smallest.shape):
            limit = min(smallest.shape)
            raise RankError(f"{where}: rank={rank} is larger than min(m, n)={limit} for a parameter of shape "
                            f"{tuple(smallest.shape)}; lower rank to at most {limit}, or send the smaller tensors "
                            "to the AdamW branch (a group with use_cosmos=False).", limit)

    def _aux_steps(self, items, group):
        parity = group["parity"]
        adamw_(items, lr=group["lr"], betas=group["betas"], eps=group["eps"], weight_decay=group["weight_decay"],
               momentum_coef=0.1 if parity else None, bias1_beta=0.9 if parity else None)

    def _matrix_steps(self, items, group):
        # Same-shape matrices at the same step count go through the step together, as one batch of
        # k matrices: one set of kernel launches on a GPU instead of k (the state lives packed, see
        # `packed_state`). Each matrix gets exactly what it would alone (tests/cosmos/test_batching.py).
        for batch in same_shape_batches(items, lambda item: item[0].shape, tag=lambda item: item[2].get("step", 0)):
            self._batch_step([w for w, _, _ in batch], stack([g for _, g, _ in batch]), [s for _, _, s in batch],
                             group)

    def _batch_step(self, ws, G, states, group):
        """One COSMOS step of k same-shape matrices ``ws`` with gradients G (k, m, n)."""
        _, m, n = G.shape
        r = group["rank"]
        beta1, beta2 = group["betas"]
        eps, backend, parity = group["eps"], group["backend"], group["parity"]
        if not states[0]:
            init_packed(states, {"exp_avg": (m, n), "basis": (n, r), "gram": (r, r), "exp_avg_sq": (m, r)}, G)
            for st in states:
                st["step"] = 0
        M, U_old, S_old, V = (packed_state(states, key) for key in ("exp_avg", "basis", "gram", "exp_avg_sq"))
        t = states[0]["step"] + 1
        for st in states:
            st["step"] = t

        # Subspace: exact at t = 1, then one power-iteration step on the EMA Gram matrix. Z is formed
        # as Z^T (r x n, row-major), so Z itself is column-major, the layout LAPACK's QR works in.
        if t == 1:
            U = top_eigenvectors(torch.bmm(G.mT, G), r, "svd" if parity else "eigh")
        else:
            Zt = gemm_epilogue(torch.bmm(G, U_old).mT, G, alpha=1 - beta2, c=torch.bmm(U_old, S_old).mT, beta=beta2,
                               backend=backend)
            U = orthonormal_basis(Zt.mT, group["qr"])

        # Momentum, the Nesterov mix, projections and the second moment, in one pass over G.
        b1 = (1 - beta1**t) / (1 - beta1)
        b2 = 1 - beta2**t
        if group["nesterov"]:  # Ghat = mix_scale (g_coef G + m_coef M)
            g_coef, m_coef, mix_scale = 1.0, beta1, 1 / (1 + beta1 * b1)
        else:
            g_coef, m_coef, mix_scale = (1.0, 0.0, 1 / b1) if parity else (0.0, 1.0, 1 / b1)
        P_G, P_hat, D = project_moments(G, M, U, V, beta1=beta1, beta2=beta2, g_coef=g_coef, m_coef=m_coef,
                                        mix_scale=mix_scale, bias2=b2, eps=eps, backend=backend)
        if t == 1:
            torch.bmm(P_G.mT, P_G, out=S_old).mul_(1 - beta2)
        else:
            T = torch.bmm(U_old.mT, U)
            torch.baddbmm(torch.bmm(torch.bmm(T.mT, S_old), T), P_G.mT, P_G, beta=beta2, alpha=1 - beta2, out=S_old)
        U_old.copy_(U)
        U = U_old

        # H = A + gamma B: the rank-r adaptive part plus the orthogonalised residual.
        scale = math.sqrt(m * n)
        coef = 0.0
        O = None
        if group["gamma"] > 0:
            R = gemm_epilogue(P_hat, U.mT, alpha=-1.0, c=G, beta=mix_scale * g_coef, d=M, delta=mix_scale * m_coef,
                              out=torch.empty_like(G), backend=backend)
            if not parity:  # ||Ghat||^2 = ||Ghat U||^2 + ||R||^2: no m x n temporary needed
                r_norm = torch.linalg.vector_norm(R, dim=(-2, -1))
                keep = r_norm > RESIDUAL_FLOOR * torch.hypot(r_norm, torch.linalg.vector_norm(P_hat, dim=(-2, -1)))
            association = "cosmos" if parity else "muon"  # equal in exact arithmetic; muon's is cheaper
            O = newton_schulz5(R, group["ns_steps"], association, ns_dtype_for(G, group["ns_dtype"]), backend=backend)
            coef = group["gamma"] * scale / (torch.linalg.vector_norm(O, dim=(-2, -1), dtype=G.dtype) + eps)
            if not parity:
                coef = coef * keep
        # O is Newton-Schulz's fresh output: in fp32 (CPU), H accumulates into it, no m x n temporary
        in_place = O is not None and O.dtype == D.dtype
        H = gemm_epilogue(D, U.mT, c=O, beta=coef, out=O if in_place else None, backend=backend)

        if group["weight_decay"]:
            torch._foreach_mul_(ws, 1 - group["lr"] * group["weight_decay"])
        norms = torch.linalg.vector_norm(H, dim=(-2, -1)) + eps
        for w, h, norm in zip(ws, H, norms):
            w.addcdiv_(h, norm, value=-group["lr"] * group["lr_ratio"] * scale)
