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
- ||NS5(R)|| is accumulated in fp32 (the official code takes it in bf16). NS5 runs in bf16 as in
  the official code where the device has bf16 GEMMs in hardware (CUDA from Ampere on; CPUs with
  AVX512-BF16 or AMX), in fp32 elsewhere, where bf16 GEMMs are converted and slow (``ns_dtype``
  auto, `reprolab.kernels.cosmos.native_bf16`).
- NS5 evaluates each step as Muon does, X <- a X + (b A + c A^2) X with A = X X^T, which for a
  k x n input (k <= n) costs k^3 + 2 k^2 n multiply-adds instead of the official 3 k^2 n of
  B = A X; X <- a X + b B + (c A) B. Equal in exact arithmetic, not bitwise (parity: official).
- U_1 comes from `eigh` of G^T G, not its SVD (parity: SVD): the same subspace, several times
  cheaper for the one-off n x n decomposition (n = 5461 for LLaMA-1B's down_proj).
- The QR of the power iteration runs as CholeskyQR2 on CUDA (``qr="auto"``, `methods.linalg`; the
  official code's `torch.linalg.qr` runs one cuSOLVER call per matrix there), Householder where
  CholeskyQR2 declines and on the CPU: the same basis up to column signs, which the update ignores.
- Where it saves time (CPU, square and tall matrices: ``ns_space``, `complement_pays`) NS5 runs on
  R's coordinates in the orthogonal complement of U, R W (m x (n - r)), W the last n - r columns of
  the power iteration's Householder QR factor (`methods.linalg.householder_qr`), and B = NS5(R W) W^T:
  NS5 commutes with orthogonal maps and R = R W W^T, so B is the same in exact arithmetic (fp64 runs
  agree to 1e-14), B is orthogonal to U to rounding (fp32 NS5 on the m x n R leaks ~2e-6 into
  span(U)), and NS5 costs (n - r)/n of the smaller side: half the flops at 256 x 256 with r = 64.
- rank > min(m, n) is an error at construction (the official code crashes at step 1 for r > n).
- Same-shape matrices take the step as one batch (one set of GPU launches, not one per matrix;
  the state of a batch lives packed in one tensor per key, each parameter's entry a view of its
  slice); each matrix gets exactly what it would alone. Newton-Schulz runs as fused Triton
  kernels on CUDA, the rank-r GEMMs on cuBLAS, where each measured faster (reprolab/kernels/cosmos).
The paper's own write-up of the update (EMA momentum without Nesterov, eps inside the square
root, a sqrt(n) normalisation: cosmos.md §2.4) differs from its code; we follow the code.
"""
from __future__ import annotations

import math

import torch

from reprolab.kernels.cosmos import gemm_epilogue, newton_schulz5, ns_dtype_for, project_moments
from reprolab.kernels.cosmos.reference import divide_by_second_moment, update_moments  # the complement path's pieces
from methods.linalg import QR_METHODS, householder_qr, orthonormal_basis
from methods.optim import (HybridOptimizer, adamw_, check_newton_schulz, init_packed, packed_state,
                          same_shape_batches, stack)

RESIDUAL_FLOOR = 1e-6  # relative ||R|| below which the Muon part is dropped (parity=False)
MAX_ROWS = 10_000  # the official shape rule: 2-D tensors with more rows go to AdamW
NS_SPACES = ("auto", "full", "complement")
COMPLEMENT_FIXED_MACS = 6_000_000  # ~10 small ops at ~10 us each, in multiply-adds at ~60 GFLOP/s (one CPU core)


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


def complement_pays(m: int, n: int, r: int, ns_steps: int = 5) -> bool:
    """Whether Newton-Schulz in the (n - r)-dim complement of U saves more than it costs (``ns_space``
    auto, CPU): its multiply-adds saved against two applications of the n x n orthogonal factor
    (4 mnr; the direct path's projections take 3 mnr, and the rotation GEMMs run slower than plain
    GEMMs) plus ``COMPLEMENT_FIXED_MACS`` for its extra small ops. Never where m <= n - r: the
    smaller side stays m, and the measured gain was nil (512 x 640, 768 x 2048 with r = 64). Saves
    at square and tall shapes from about 128 x 128 (256 x 256, r = 64: Newton-Schulz on 256 x 192,
    half the flops; the step 0.75x the full path's)."""
    if m <= n - r:
        return False

    def ns(a: int, b: int) -> int:
        lo, hi = min(a, b), max(a, b)
        return ns_steps * (2 * lo * lo * hi + lo**3)

    return ns(m, n) - ns(m, n - r) > 4 * m * n * r + COMPLEMENT_FIXED_MACS


def _residual_kept(R: torch.Tensor, P_hat: torch.Tensor) -> torch.Tensor:
    """Per matrix, ||R|| > RESIDUAL_FLOOR ||Ghat|| with ||Ghat||^2 = ||Ghat U||^2 + ||R||^2 (R ⟂ Ghat U):
    False where the residual is rounding noise (e.g. rank = min(m, n)), and the Muon part is dropped."""
    r_norm = torch.linalg.vector_norm(R, dim=(-2, -1))
    return r_norm > RESIDUAL_FLOOR * torch.hypot(r_norm, torch.linalg.vector_norm(P_hat, dim=(-2, -1)))


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
        ns_steps, ns_dtype: Newton-Schulz steps (5) and dtype: None or "auto" = bf16 as in the official
            code where the device runs bf16 GEMMs natively, else fp32 (`reprolab.kernels.cosmos.ns_dtype_for`);
            or a dtype / "bfloat16" / "float32".
        parity: reproduce the official code's quirks (module docstring).
        backend: kernels for the hot GEMMs: None (auto, see `reprolab.kernels.cosmos`), "torch", "triton".
        qr: the power iteration's orthonormalisation (`methods.linalg.orthonormal_basis`): "auto"
            (CholeskyQR2 on CUDA, where batched Householder QR runs per matrix; Householder on the
            CPU), "householder" (`torch.linalg.qr`, the official code's) or "cholesky_qr2". The same
            basis up to column signs, which the update does not depend on.
        ns_space: where Newton-Schulz runs: "full" (on the m x n residual R, as the official code),
            "complement" (on R's coordinates R W in the (n - r)-dim orthogonal complement W of U,
            m x (n - r), mapped back by W^T: the same B in exact arithmetic, B orthogonal to U to
            rounding; W from the Householder QR, so it needs qr "auto" or "householder"), or
            "auto": complement on the CPU where `complement_pays`, full elsewhere (on CUDA, where
            the QR runs as CholeskyQR2, not timed yet). parity=True and gamma=0 always take full.

    Defaults are the official README's recommendation (lr 2e-3, betas (0.95, 0.95), lr_ratio 0.2,
    gamma 0.2, rank 64), with weight_decay 0 as in the paper's LLaMA runs (README: 0.1). The
    official constructor's own defaults differ: lr 1e-3, betas (0.9, 0.999), lr_ratio 0.1.
    """

    flag = "use_cosmos"

    def __init__(self, params, lr: float = 2e-3, betas=(0.95, 0.95), eps: float = 1e-8, weight_decay: float = 0.0,
                 *, lr_ratio: float = 0.2, gamma: float = 0.2, rank: int = 64, nesterov: bool = True,
                 ns_steps: int = 5, ns_dtype: torch.dtype | str | None = None, parity: bool = False,
                 backend: str | None = None, qr: str = "auto", ns_space: str = "auto"):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, lr_ratio=lr_ratio, gamma=gamma,
                        rank=rank, nesterov=nesterov, ns_steps=ns_steps, ns_dtype=ns_dtype, parity=parity,
                        backend=backend, qr=qr, ns_space=ns_space)
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
        if group["ns_space"] not in NS_SPACES:
            raise ValueError(f"{where}: ns_space={group['ns_space']!r} is not one of {NS_SPACES}.")
        if group["ns_space"] == "complement" and group["qr"] == "cholesky_qr2":
            raise ValueError(f"{where}: ns_space='complement' takes the complement of U from the Householder QR's "
                             "reflectors; set qr='householder' (or 'auto'), or ns_space='full'.")
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

    def _ns_in_complement(self, group: dict, G: torch.Tensor) -> bool:
        """Whether this step runs Newton-Schulz in the complement of U (the ``ns_space`` option)."""
        space = group["ns_space"]
        if space == "full" or group["parity"] or group["gamma"] == 0:
            return False
        if space == "complement":
            return True
        _, m, n = G.shape
        return G.device.type == "cpu" and group["qr"] != "cholesky_qr2" and complement_pays(m, n, group["rank"],
                                                                                            group["ns_steps"])

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

        wy = None  # the compact-WY orthogonal factor [U, W] where Newton-Schulz runs in W's space
        # Subspace: exact at t = 1, then one power-iteration step on the EMA Gram matrix. Z is formed
        # as Z^T (r x n, row-major), so Z itself is column-major, the layout LAPACK's QR works in.
        if t == 1:
            U = top_eigenvectors(torch.bmm(G.mT, G), r, "svd" if parity else "eigh")
        else:
            Zt = gemm_epilogue(torch.bmm(G, U_old).mT, G, alpha=1 - beta2, c=torch.bmm(U_old, S_old).mT, beta=beta2,
                               backend=backend)
            if self._ns_in_complement(group, G):
                U, wy = householder_qr(Zt.mT)
            else:
                U = orthonormal_basis(Zt.mT, group["qr"])

        # Momentum, the Nesterov mix, projections, the second moment and the direction H = A + gamma B.
        b1 = (1 - beta1**t) / (1 - beta1)
        if group["nesterov"]:  # Ghat = mix_scale (g_coef G + m_coef M)
            mix = (1.0, beta1, 1 / (1 + beta1 * b1))
        else:
            mix = (1.0, 0.0, 1 / b1) if parity else (0.0, 1.0, 1 / b1)
        if wy is None:
            P_G, H = self._direction(G, M, U, V, mix, 1 - beta2**t, group)
        else:
            P_G, H = self._complement_direction(G, M, U, V, wy, mix, 1 - beta2**t, group)

        # S in the new basis, then U replaces the old basis in place.
        if t == 1:
            torch.bmm(P_G.mT, P_G, out=S_old).mul_(1 - beta2)
        else:
            T = torch.bmm(U_old.mT, U)
            torch.baddbmm(torch.bmm(torch.bmm(T.mT, S_old), T), P_G.mT, P_G, beta=beta2, alpha=1 - beta2, out=S_old)
        U_old.copy_(U)

        scale = math.sqrt(m * n)
        if group["weight_decay"]:
            torch._foreach_mul_(ws, 1 - group["lr"] * group["weight_decay"])
        norms = torch.linalg.vector_norm(H, dim=(-2, -1)) + eps
        for w, h, norm in zip(ws, H, norms):
            w.addcdiv_(h, norm, value=-group["lr"] * group["lr_ratio"] * scale)

    def _direction(self, G, M, U, V, mix, bias2, group):
        """P_G = G U and H = A + gamma B with Newton-Schulz on the m x n residual R (the official code)."""
        beta1, beta2 = group["betas"]
        eps, backend, parity = group["eps"], group["backend"], group["parity"]
        g_coef, m_coef, mix_scale = mix
        P_G, P_hat, D = project_moments(G, M, U, V, beta1=beta1, beta2=beta2, g_coef=g_coef, m_coef=m_coef,
                                        mix_scale=mix_scale, bias2=bias2, eps=eps, backend=backend)
        coef, O = 0.0, None
        if group["gamma"] > 0:
            R = gemm_epilogue(P_hat, U.mT, alpha=-1.0, c=G, beta=mix_scale * g_coef, d=M, delta=mix_scale * m_coef,
                              out=torch.empty_like(G), backend=backend)
            keep = None if parity else _residual_kept(R, P_hat)  # parity: no vanishing-residual guard
            association = "cosmos" if parity else "muon"  # equal in exact arithmetic; muon's is cheaper
            O = newton_schulz5(R, group["ns_steps"], association, ns_dtype_for(G, group["ns_dtype"]), backend=backend)
            coef = self._muon_coef(O, keep, G, group)
        # O is Newton-Schulz's fresh output: in fp32 (ns_dtype fp32), H accumulates into it, no m x n temporary
        in_place = O is not None and O.dtype == D.dtype
        return P_G, gemm_epilogue(D, U.mT, c=O, beta=coef, out=O if in_place else None, backend=backend)

    def _complement_direction(self, G, M, U, V, wy, mix, bias2, group):
        """P_G = G U and H = A + gamma B with Newton-Schulz on R's coordinates in the complement of U.

        With Q = [U, W] the orthogonal factor of the power iteration's QR (n x n, applied in
        compact WY form), Ghat Q = [Ghat U, R W] and R = (R W) W^T; Newton-Schulz commutes with
        orthogonal maps, so NS5(R) = NS5(R W) W^T and H = [D, gamma' NS5(R W)] Q^T: the same H as
        `_direction` in exact arithmetic, Newton-Schulz on m x (n - r) instead of m x n, and
        B orthogonal to U to rounding (cosmos.md §6 property 5 holds exactly).
        """
        beta1, beta2 = group["betas"]
        g_coef, m_coef, mix_scale = mix  # g_coef is 1 or 0 (module docstring)
        r = U.shape[-1]
        P_G = update_moments(G, M, U, V, beta1=beta1, beta2=beta2)
        # Ghat itself, not a multiple: Newton-Schulz's normalisation (+1e-7) is not scale-invariant
        X = torch.add(G, M, alpha=m_coef).mul_(mix_scale) if g_coef else M.mul(m_coef * mix_scale)
        wy.apply(X)  # [Ghat U, R W]
        head, tail = X[..., :r], X[..., r:]
        D = divide_by_second_moment(head, V, bias2=bias2, eps=group["eps"])
        if tail.shape[-1]:  # n > r
            keep = _residual_kept(tail, head)
            O = newton_schulz5(tail, group["ns_steps"], "muon", ns_dtype_for(G, group["ns_dtype"]),
                               backend=group["backend"])
            torch.mul(O, self._muon_coef(O, keep, G, group).view(-1, 1, 1), out=tail)
        head.copy_(D)
        return P_G, wy.apply(X, transpose=True)

    @staticmethod
    def _muon_coef(O, keep, G, group):
        """gamma sqrt(mn) / (||O||_F + eps) per matrix of the batch (||NS5(R W)|| = ||NS5(R)||), zero
        where the residual was dropped (``keep``; None: kept)."""
        m, n = G.shape[-2:]
        coef = group["gamma"] * math.sqrt(m * n) / (torch.linalg.vector_norm(O, dim=(-2, -1), dtype=G.dtype)
                                                    + group["eps"])
        return coef if keep is None else coef * keep
