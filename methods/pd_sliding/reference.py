"""F* of ``min_{x in X} F(x)``: restarted FISTA with exact projection, cached on disk once per problem.

FISTA (Beck & Teboulle 2009) with gradient-based adaptive restart (O'Donoghue & Candès 2015), step
1/L_F, from x = 0, until the step ||x_{t+1} - x_t|| falls below ``tol`` (relative) or ``max_iter``.
The Frank–Wolfe gap ``<grad F(x*), x* - LO(grad F(x*))>`` bounds F(x*) - F* from above and is
stored with the solution as its certificate (for X = R^d: ||grad F(x*)|| instead).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

import torch

from methods.pd_sliding.oracles import Unconstrained

log = logging.getLogger(__name__)


def fista(value_grad, X, L: float, dim: int, dtype=torch.float64, max_iter: int = 100_000,
          tol: float = 1e-15) -> tuple[torch.Tensor, int]:
    """Restarted FISTA; returns (x (1, dim), iterations)."""
    x = torch.zeros(1, dim, dtype=dtype)
    y, t = x.clone(), 1.0
    for it in range(1, max_iter + 1):
        _, g = value_grad(y)
        x_new = X.project(y - g / L)
        if float(((x_new - x) * g).sum()) > 0:  # the momentum points uphill: restart it
            t, y = 1.0, x_new
        else:
            t_new = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
            y, t = x_new + ((t - 1) / t_new) * (x_new - x), t_new
        step = float(torch.linalg.vector_norm(x_new - x))
        x = x_new
        if step <= tol * max(1.0, float(torch.linalg.vector_norm(x))):
            return x, it
    return x, max_iter


def certificate(value_grad, X, x: torch.Tensor) -> float:
    _, g = value_grad(x)
    if isinstance(X, Unconstrained):
        return float(torch.linalg.vector_norm(g))
    return float(((x - X.lo(g)) * g).sum())


def cache_key(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cached(path: Path, compute):
    """``compute()`` once; later calls (any process) load the file."""
    path = Path(path)
    if path.exists():
        return torch.load(path, weights_only=False)
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{id(result)}.tmp")
    torch.save(result, tmp)
    tmp.replace(path)
    log.info(f"reference solution cached at {path}")
    return result
