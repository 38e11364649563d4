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

    c, w: (workers, dim), w feasible (the warm start); beta, delta: (workers,) or scalars. Rows that
    reach their tolerance leave the working set, so the cost of an iteration is that of the rows
    still running (per-row counts differ by orders of magnitude across workers).
    """
    k = c.shape[0]
    beta = torch.as_tensor(beta, dtype=c.dtype, device=c.device).expand(k)
    delta = torch.as_tensor(delta, dtype=c.dtype, device=c.device).expand(k)
    out, calls = w.clone(), torch.full((k,), max_iter, dtype=torch.int64)
    rows = torch.arange(k, device=c.device)
    beta = beta.unsqueeze(-1)  # w is rebound (never written in place): no copy needed
    for s in range(max_iter):
        grad = (w - c) * beta
        away = w - X.lo(grad)                       # w_s - v_s
        gap = (grad * away).sum(dim=-1)             # Wolfe gap V_s
        done = gap <= delta
        if bool(done.any()):
            out[rows[done]] = w[done]
            calls[rows[done].cpu()] = s + 1
            if bool(done.all()):
                return out, calls, torch.zeros(k, dtype=torch.bool)
            keep = ~done
            rows, c, beta, delta, w, gap, away = rows[keep], c[keep], beta[keep], delta[keep], w[keep], gap[keep], away[keep]
        # exact line search on the quadratic: alpha = min(1, V / (beta ||v - w||^2))
        alpha = (gap / ((away * away).sum(dim=-1) * beta.squeeze(-1))).clamp(max=1.0)
        w = w - alpha.unsqueeze(-1) * away
    out[rows] = w
    stuck = torch.zeros(k, dtype=torch.bool)
    stuck[rows.cpu()] = True
    return out, calls, stuck
