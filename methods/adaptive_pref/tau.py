"""The per-pair scaling tau of APS (arXiv:2406.02764 Alg. 1; spec ../shared/papers/adaptive_pref.md §2.2-2.3).

For a detached scaled margin x, tau minimises over [tau0, tau_max] the per-pair objective

    f(tau) = -tau log(2 sigmoid(x / tau)) + rho0 tau          (Eq. 4-6 in the code's form)

- `newton_tau`: K projected Newton steps from tau = 1, every pair at once (the official code:
  f' = -log(2s + eps) + (1 - s) x/tau + rho0, f'' = max(x^2/tau^3 s(1 - s), eps), s = sigmoid(x/tau));
- `closed_form_tau`: the exact minimiser tau* = clip(|x| / u(rho0), tau0, tau_max), u(rho0) = logit(p),
  p in (1/2, 1) with log 2 - H(p) = rho0 (tau* = tau0 for rho0 >= log 2), spec §2.3.

The quadratic variant (paper Sec. 3.6, spec §2.4-2.5) replaces rho0 tau by rho0 tau^2:
f(tau) = -tau log(2 sigmoid(x / tau)) + rho0 tau^2, f' = H(sigmoid(x/tau)) - log 2 + 2 rho0 tau (increasing: f is
convex), f'' = x^2/tau^3 s(1 - s) + 2 rho0. `newton_tau(quadratic=True)` is the official code's step (+ 2 rho0 tau in
f', + 2 rho0 in f'' before the clamp); `quadratic_tau` the exact minimiser (f' has no closed-form root in x:
bisection to float64 precision, all pairs at once).
"""
from __future__ import annotations

import math

import torch


def binary_entropy(p: float) -> float:
    """H(p) in nats."""
    return -(p * math.log(p) + (1 - p) * math.log1p(-p))


def u_of_rho(rho0: float) -> float:
    """u = logit(p), p in (1/2, 1) solving log 2 - H(p) = rho0 (bisection in float64); inf for rho0 >= log 2."""
    if rho0 >= math.log(2):
        return math.inf
    lo, hi = 0.5, 1.0
    for _ in range(200):  # log 2 - H(p) increases on (1/2, 1) from 0 to log 2
        mid = 0.5 * (lo + hi)
        if math.log(2) - binary_entropy(mid) < rho0:
            lo = mid
        else:
            hi = mid
    p = 0.5 * (lo + hi)
    return math.log(p / (1 - p))


def closed_form_tau(x: torch.Tensor, tau0: float, tau_max: float, rho0: float) -> torch.Tensor:
    u = u_of_rho(rho0)
    if math.isinf(u):
        return torch.full_like(x, tau0)
    return (x.abs() / u).clamp(tau0, tau_max)


def newton_tau(x: torch.Tensor, tau0: float, tau_max: float, rho0: float, steps: int, eps: float,
               tau_init: float = 1.0, quadratic: bool = False) -> torch.Tensor:
    tau = torch.full_like(x, tau_init)
    for _ in range(steps):  # K vectorised steps over the whole batch (no per-pair loop)
        z = x / tau
        s = torch.sigmoid(z)
        curvature = x**2 / tau**3 * (1 - s) * s
        if quadratic:
            grad = -torch.log(2 * s + eps) + (1 - s) * z + 2 * rho0 * tau
            hess = (curvature + 2 * rho0).clamp(min=eps)
        else:
            grad = -torch.log(2 * s + eps) + (1 - s) * z + rho0
            hess = curvature.clamp(min=eps)
        tau = (tau - grad / hess).clamp(tau0, tau_max)
    return tau


def quadratic_tau(x: torch.Tensor, tau0: float, tau_max: float, rho0: float, iters: int = 80) -> torch.Tensor:
    """argmin over [tau0, tau_max] of -tau log(2 sigmoid(x/tau)) + rho0 tau^2 (exact: bisection on the increasing f')."""
    ax = x.detach().double().abs()

    def slope(tau):  # f'(tau) = H(sigmoid(z)) - log 2 + 2 rho0 tau, z = |x| / tau, H = softplus(-z) + (1 - s) z
        z = ax / tau
        return torch.nn.functional.softplus(-z) + (1 - torch.sigmoid(z)) * z - math.log(2) + 2 * rho0 * tau

    lo, hi = torch.full_like(ax, tau0), torch.full_like(ax, tau_max)
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        up = slope(mid) > 0
        lo, hi = torch.where(up, lo, mid), torch.where(up, mid, hi)
    tau = 0.5 * (lo + hi)
    tau = torch.where(slope(torch.full_like(ax, tau0)) >= 0, tau0, tau)  # minimum at the lower bound
    tau = torch.where(slope(torch.full_like(ax, tau_max)) <= 0, tau_max, tau)
    return tau.to(x.dtype)
