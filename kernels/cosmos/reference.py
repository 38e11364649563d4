"""PyTorch twins of the COSMOS kernels (kernels/cosmos/triton_kernels.py): the path used on CPU.

Each function computes exactly what its Triton kernel computes, in plain torch ops, in the order
the official code uses where one exists (so that the twin is bitwise-comparable with it).
"""
from __future__ import annotations

import math

import torch

NS5_COEFFS = (3.4445, -4.7750, 2.0315)  # (a, b, c) of the quintic Newton-Schulz map f(x) = a x + b x^3 + c x^5
ASSOCIATIONS = ("cosmos", "muon")


def gemm_epilogue(a, b, *, alpha=1.0, c=None, beta=1.0, d=None, delta=1.0, out_dtype=None):
    """out = alpha (a @ b) + beta c + delta d  (c, d optional, same shape as the product).

    a: (M, K), b: (K, N), any strides (pass ``x.T`` for a transposed operand). The product is
    taken in the inputs' dtype (fp32 accumulation inside torch for bf16), the epilogue in fp32
    (fp64 for fp64 inputs).
    """
    acc = torch.promote_types(a.dtype, torch.float32)
    if c is not None and a.dtype == b.dtype == c.dtype == acc and not isinstance(beta, torch.Tensor):
        out = torch.addmm(c, a, b, beta=beta, alpha=alpha)  # one pass: product and axpy
    else:
        out = (a @ b).to(acc)
        if alpha != 1.0:
            out.mul_(alpha)
        if c is not None:
            out.add_(c.to(acc) * beta)
    if d is not None:
        out.add_(d.to(acc), alpha=delta)
    return out.to(out_dtype or a.dtype)


def newton_schulz5(x: torch.Tensor, steps: int = 5, association: str = "cosmos", dtype=torch.bfloat16):
    """Approximate orthogonalisation UV^T of x = U S V^T by ``steps`` quintic Newton-Schulz steps.

    x: (m, n). Returns (m, n) in ``dtype`` with singular values in about [0.68, 1.14] (not exactly
    orthogonal, by design). The input is normalised by its Frobenius norm (+1e-7, computed in
    ``dtype``) and transposed to be wide. ``association`` picks the evaluation order of one step,
    with A = X X^T:
      "cosmos" (lliu606/COSMOS): B = A X;  X <- a X + b B + (c A) B
      "muon"   (KellerJordan/Muon): B = b A + c A A;  X <- a X + B X
    Equal in exact arithmetic, not bitwise equal in bf16 (cosmos.md §2.6). In bf16/fp16 each step
    is written exactly as in the official code, so the twin is bitwise comparable with it; in
    fp32/fp64 (the CPU default) the axpys are folded into `torch.addmm` (one pass instead of four
    over X; the same association up to rounding: c (A B) rather than (c A) B).
    """
    if association not in ASSOCIATIONS:
        raise ValueError(f"association={association!r} is not one of {ASSOCIATIONS}")
    a, b, c = NS5_COEFFS
    X = x.to(dtype)
    X = X / (X.norm() + 1e-7)
    tall = x.size(0) > x.size(1)
    if tall:
        X = X.T
    literal = dtype in (torch.bfloat16, torch.float16)
    for _ in range(steps):
        A = X @ X.T
        if association == "cosmos":
            B = A @ X
            X = a * X + b * B + c * A @ B if literal else torch.addmm(B, A, B, beta=b, alpha=c).add_(X, alpha=a)
        else:
            B = b * A + c * A @ A if literal else torch.addmm(A, A, A, beta=b, alpha=c)
            X = a * X + B @ X if literal else torch.addmm(X, B, X, beta=a)
    return X.T if tall else X


def project_moments(G, M, U, V, *, beta1, beta2, g_coef, m_coef, mix_scale, bias2, eps):
    """The fused projection + moment update of one COSMOS step (cosmos.md §2.4 steps 1, 3, 5, 6).

    G: (m, n) gradient; M: (m, n) momentum; U: (n, r) basis; V: (m, r) second moment. Updates in
    place M <- beta1 M + G and V <- beta2 V + (1 - beta2) (G U)^2, and returns
      P_G = G U,  P_hat = Ghat U,  D = P_hat / (sqrt(V) / sqrt(bias2) + eps)     (each (m, r))
    with Ghat = mix_scale (g_coef G + m_coef M): the Nesterov mix (G + beta1 M) / (1 + beta1 b1), or
    M / b1 without Nesterov (the official code's association, for parity).
    """
    M.mul_(beta1).add_(G)
    P_G = G @ U
    V.mul_(beta2).addcmul_(P_G, P_G, value=1 - beta2)
    ghat = torch.add(G if g_coef == 1 else G * g_coef, M, alpha=m_coef).mul_(mix_scale)
    P_hat = ghat @ U
    D = P_hat / (V.sqrt() / math.sqrt(bias2) + eps)
    return P_G, P_hat, D
