"""PyTorch twins of the COSMOS kernels (reprolab/kernels/cosmos/triton_kernels.py): the path used on CPU.

Each function computes what its Triton kernel computes (equal up to fp32 rounding), in plain
torch ops arranged for the CPU: as few passes over the m x n operands and as few m x n
temporaries as possible (addmm's built-in axpy, in-place accumulation). In bf16, Newton-Schulz
follows the official code op by op, so it is bitwise comparable with it.
"""
from __future__ import annotations

import math

import torch

NS5_COEFFS = (3.4445, -4.7750, 2.0315)  # (a, b, c) of the quintic Newton-Schulz map f(x) = a x + b x^3 + c x^5
ASSOCIATIONS = ("cosmos", "muon")


def gemm_epilogue(a, b, *, alpha=1.0, c=None, beta=1.0, d=None, delta=1.0, out_dtype=None, out=None):
    """out = alpha (a @ b) + beta c + delta d  (c, d optional, same shape as the product).

    a: (M, K), b: (K, N), or batches (k, M, K), (k, K, N) with c, d, out (k, M, N) and ``beta``
    a number, a 0-dim tensor or one per matrix (k,); any strides (``x.mT`` for a transposed
    operand). The product is taken in the inputs' dtype (fp32 accumulation inside torch for bf16),
    the epilogue in fp32 (fp64 for fp64 inputs). The result is a new row-major tensor (when c, d
    are row-major or absent), or ``out``: it may be ``c`` itself, which then accumulates in place
    without a temporary.
    """
    acc = torch.promote_types(a.dtype, torch.float32)
    if isinstance(beta, torch.Tensor) and beta.dim() == 1:  # one coefficient per matrix of a batch
        beta = beta.view(-1, 1, 1)
    # E with k E = beta c + delta d, built in as few passes as possible: the GEMM then accumulates
    # into E with BLAS's own beta = k (addmm_), so the product needs no temporary of its own.
    E, k = None, 1.0
    number = not isinstance(beta, torch.Tensor)
    if c is not None and out is c and c.dtype == acc:
        E = c if number and beta == 1 else c.mul_(beta)
    elif c is not None and number and beta != 0:
        c = c.to(acc)
        into = out if out is not None and out.dtype == acc and out is not d else None  # E built in out: no copy after
        if d is None:
            E = c.clone(memory_format=torch.contiguous_format) if into is None else into.copy_(c)
        else:
            E = torch.add(c, d.to(acc), alpha=delta / beta, out=into)
        k, d = beta, None
    elif c is not None:
        E = c.to(acc) * beta
    if d is not None:
        E = d.to(acc) * delta if E is None else E.add_(d.to(acc), alpha=delta)
    if E is None:
        result = _mm(a, b).to(acc)
        if alpha != 1.0:
            result.mul_(alpha)
    elif a.dtype == b.dtype == acc:
        result = E.addmm_(a, b, beta=k, alpha=alpha) if a.dim() == 2 else E.baddbmm_(a, b, beta=k, alpha=alpha)
    else:
        result = E.mul_(k).add_(_mm(a, b).to(acc), alpha=alpha)
    result = result.to(out_dtype or a.dtype)
    if out is not None and result is not out:
        out.copy_(result)
        return out
    return result


def _mm(a, b):
    """a @ b for matrices (mm) or batches of them (bmm), without matmul's broadcasting views."""
    return torch.mm(a, b) if a.dim() == 2 else torch.bmm(a, b)


def _addmm(c, a, b, *, beta, alpha):
    """beta c + alpha (a @ b) in one BLAS call, for matrices (addmm) or batches of them (baddbmm)."""
    op = torch.addmm if a.dim() == 2 else torch.baddbmm
    return op(c, a, b, beta=beta, alpha=alpha)


def frobenius_normalise(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x in ``dtype`` divided by its Frobenius norm + 1e-7 (taken in ``dtype``), per matrix of a batch."""
    X = x.to(dtype)
    if X.dim() == 2:  # the official code's X.norm(), kept so that single matrices stay bitwise comparable
        return X / (X.norm() + 1e-7)
    return X / (torch.linalg.vector_norm(X, dim=(-2, -1), keepdim=True) + 1e-7)


def newton_schulz5(x: torch.Tensor, steps: int = 5, association: str = "cosmos", dtype=torch.bfloat16):
    """Approximate orthogonalisation UV^T of x = U S V^T by ``steps`` quintic Newton-Schulz steps.

    x: (m, n), or a batch (k, m, n) of matrices orthogonalised independently (one batched GEMM per
    product instead of k: what the optimizers use for same-shape matrices). Returns x's shape in
    ``dtype`` with singular values in about [0.68, 1.14] (not exactly orthogonal, by design). Each
    matrix is normalised by its Frobenius norm (+1e-7, computed in ``dtype``) and transposed to be
    wide. ``association`` picks the evaluation order of one step, with A = X X^T:
      "cosmos" (lliu606/COSMOS): B = A X;  X <- a X + b B + (c A) B
      "muon"   (KellerJordan/Muon): B = b A + c A A;  X <- a X + B X
    Equal in exact arithmetic, not bitwise equal in bf16 (cosmos.md §2.6). In bf16/fp16 each step
    is written exactly as in the official code, so the twin is bitwise comparable with it; in
    fp32/fp64 (what auto takes on a CPU without bf16 GEMMs) the axpys are folded into `torch.addmm`
    (one pass instead of four over X; the same association up to rounding: c (A B) rather than (c A) B).
    """
    if association not in ASSOCIATIONS:
        raise ValueError(f"association={association!r} is not one of {ASSOCIATIONS}")
    a, b, c = NS5_COEFFS
    X = frobenius_normalise(x, dtype)
    tall = x.size(-2) > x.size(-1)
    if tall:
        X = X.mT
    literal = dtype in (torch.bfloat16, torch.float16)
    for _ in range(steps):
        A = _mm(X, X.mT)
        if association == "cosmos":
            B = _mm(A, X)
            X = a * X + b * B + _mm(c * A, B) if literal else _addmm(B, A, B, beta=b, alpha=c).add_(X, alpha=a)
        else:
            B = b * A + _mm(c * A, A) if literal else _addmm(A, A, A, beta=b, alpha=c)
            X = a * X + _mm(B, X) if literal else _addmm(X, B, X, beta=a, alpha=1.0)
    return X.mT if tall else X


def project_moments(G, M, U, V, *, beta1, beta2, g_coef, m_coef, mix_scale, bias2, eps):
    """The fused projection + moment update of one COSMOS step (cosmos.md §2.4 steps 1, 3, 5, 6).

    G: (m, n) gradient; M: (m, n) momentum; U: (n, r) basis; V: (m, r) second moment (or batches
    (k, ...) of each, one matrix per slice). Updates in place M <- beta1 M + G and
    V <- beta2 V + (1 - beta2) (G U)^2, and returns
      P_G = G U,  P_hat = Ghat U,  D = P_hat / (sqrt(V) / sqrt(bias2) + eps)     (each (m, r))
    with Ghat = mix_scale (g_coef G + m_coef M): the Nesterov mix (G + beta1 M) / (1 + beta1 b1), or
    M / b1 without Nesterov (G / b1 in parity mode). Ghat U is taken as
    mix_scale (g_coef P_G + m_coef M U), which reuses P_G and never forms Ghat (m x n).
    """
    P_G = update_moments(G, M, U, V, beta1=beta1, beta2=beta2)
    P_hat = _addmm(P_G, M, U, beta=mix_scale * g_coef, alpha=mix_scale * m_coef)  # Ghat U, Ghat never formed
    return P_G, P_hat, divide_by_second_moment(P_hat, V, bias2=bias2, eps=eps)


def update_moments(G, M, U, V, *, beta1, beta2):
    """M <- beta1 M + G and V <- beta2 V + (1 - beta2) (G U)^2, in place; returns P_G = G U."""
    torch.add(G, M, alpha=beta1, out=M)  # one pass
    P_G = _mm(G, U)
    V.mul_(beta2).addcmul_(P_G, P_G, value=1 - beta2)
    return P_G


def divide_by_second_moment(P_hat, V, *, bias2, eps):
    """D = P_hat / (sqrt(V) / sqrt(bias2) + eps): the adaptive (SOAP) part in U's coordinates."""
    return P_hat / V.sqrt().div_(math.sqrt(bias2)).add_(eps)
