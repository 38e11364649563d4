"""The CndG procedure of conditional gradient sliding, one independent problem per worker row.

Lan & Zhou, "Conditional gradient sliding for convex optimization", SIAM J. Optim. 2016
(procedure CndG). Approximately solves, per row i,

    min_{x in X}  phi_i(x) = (beta_i / 2) ||x - c_i||^2

(a subproblem <g, x> + beta/2 ||x - u||^2 is this one with c = u - g / beta, and the sums of
quadratic terms of the sliding methods collapse to it the same way)
with LO calls only (Frank–Wolfe with exact line search on the quadratic), starting from a
feasible ``w``, and stops row i at the first s with Wolfe gap
``V_s = <grad phi(w_s), w_s - v_s> <= delta_i`` (then phi(w_s) - phi* <= V_s <= delta_i).
Rows that have stopped are frozen while the others continue, so the result of a row does not
depend on which other rows share the call (the backends agree bit for bit).
"""
from __future__ import annotations

import torch


def cndg(c: torch.Tensor, beta, w: torch.Tensor, X, delta, max_iter: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                                  torch.Tensor]:
    """(w, LO calls per row, rows that hit ``max_iter`` before their gap reached delta).

    c, w: (workers, dim), w feasible (the warm start); beta, delta: (workers,) or scalars.
    """
    k = c.shape[0]
    beta = torch.as_tensor(beta, dtype=c.dtype, device=c.device).expand(k)
    delta = torch.as_tensor(delta, dtype=c.dtype, device=c.device).expand(k)
    beta_col = beta.unsqueeze(-1)
    active = torch.ones(k, dtype=torch.bool, device=c.device)
    calls = torch.zeros(k, dtype=torch.int64, device=c.device)
    zero = torch.zeros((), dtype=c.dtype, device=c.device)
    for _ in range(max_iter):
        grad = (w - c) * beta_col
        away = w - X.lo(grad)                       # w_s - v_s
        gap = (grad * away).sum(dim=-1)             # Wolfe gap V_s
        calls += active
        active = active & (gap > delta)
        if not bool(active.any()):
            break
        # exact line search alpha = min(1, V / (beta ||v - w||^2)); stopped rows take alpha = 0
        alpha = torch.where(active, (gap / ((away * away).sum(dim=-1) * beta)).clamp(max=1.0), zero)
        w = w - alpha.unsqueeze(-1) * away
    return w, calls, active
