"""An independent, unfused transcription of the official COSMOS step (2026 `COSMOS_optim.py`) as
the spec describes it (cosmos.md §2.4-§2.6), quirks included, for the parity test (§6.1).

It keeps the official order of operations: SVD of the Gram matrix at step 1, Nesterov mixing
done in place on the gradient it is given, the AdamW branch with momentum coefficient 0.1 and
bias correction 1 - 0.9^t, and the shape rule for routing. Newton-Schulz runs in ``ns_dtype``.
"""
from __future__ import annotations

import math

import torch

A_NS, B_NS, C_NS = 3.4445, -4.7750, 2.0315


def ns5(x: torch.Tensor, steps: int, dtype: torch.dtype) -> torch.Tensor:
    X = x.to(dtype)
    X /= X.norm() + 1e-7
    tall = x.size(0) > x.size(1)
    if tall:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        B = A @ X
        X = A_NS * X + B_NS * B + C_NS * A @ B
    return X.T if tall else X


def official_step(p: torch.Tensor, grad: torch.Tensor, state: dict, *, lr, betas, eps, weight_decay, lr_ratio, gamma,
                  rank, ns_dtype=torch.float32) -> None:
    """One official step for tensor ``p`` (updated in place); ``grad`` is consumed (mutated)."""
    beta1, beta2 = betas
    matrix = p.dim() == 2 and p.size(0) <= 10000
    if not state:
        state["step"] = 0
        state["exp_avg"] = torch.zeros_like(p)
        if matrix:
            state["exp_avg_GG"] = torch.zeros(rank, rank, dtype=p.dtype)
            state["exp_avg_P"] = torch.zeros(p.size(1), rank, dtype=p.dtype)
            state["exp_avg_sq"] = torch.zeros(p.size(0), rank, dtype=p.dtype)
        else:
            state["exp_avg_sq"] = torch.zeros_like(p)
    state["step"] += 1
    t = state["step"]
    M, V = state["exp_avg"], state["exp_avg_sq"]
    b1 = (1 - beta1**t) / (1 - beta1)
    b2 = 1 - beta2**t
    if not matrix:
        M.mul_(beta1).add_(grad, alpha=0.1)
        V.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (V.sqrt() / math.sqrt(b2)).add_(eps)
        if weight_decay > 0:
            p.mul_(1 - lr * weight_decay)
        p.addcdiv_(M, denom, value=-lr / (1 - 0.9**t))
        return
    M.mul_(beta1).add_(grad)
    if t == 1:
        U_full, _, _ = torch.linalg.svd(grad.T @ grad, full_matrices=False)
        U = U_full[:, :rank]
        S = (U.T @ grad.T) @ (grad @ U) * (1 - beta2)
    else:
        U_prev, S_prev = state["exp_avg_P"], state["exp_avg_GG"]
        Z = beta2 * (U_prev @ S_prev) + (1 - beta2) * (grad.T @ (grad @ U_prev))
        U, _ = torch.linalg.qr(Z, mode="reduced")
        T = U_prev.T @ U
        S = beta2 * (T.T @ (S_prev @ T)) + (1 - beta2) * ((grad @ U).T @ (grad @ U))
    low = grad @ U
    V.mul_(beta2).addcmul_(low, low, value=1 - beta2)
    grad.add_(M, alpha=beta1).mul_(1 / (1 + beta1 * b1))  # Nesterov, in place, as the official code
    proj = grad @ U
    A = (proj / ((V.sqrt() / math.sqrt(b2)).add_(eps))) @ U.T
    O = ns5(grad - proj @ U.T, 5, ns_dtype)
    O = O / (O.norm() + eps)
    scale = (p.size(0) * p.size(1)) ** 0.5
    A.add_(O.to(A.dtype), alpha=scale * gamma)
    if weight_decay > 0:
        p.mul_(1 - lr * weight_decay)
    p.add_(A / (A.norm() + eps), alpha=-scale * lr_ratio * lr)
    state["exp_avg_P"] = U.clone()
    state["exp_avg_GG"] = S.clone()
