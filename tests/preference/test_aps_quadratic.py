"""The quadratic APS variant (arXiv:2406.02764 Sec. 3.6; spec ../shared/papers/adaptive_pref.md §2.4-2.5, §6.9):
-tau log sigmoid(x/tau) + rho0 tau^2 - (log 2) tau, the official Newton step and the exact minimiser."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize, minimize_scalar

from methods.adaptive_pref import AdaDPOConfig, AdaptivePrefConfig, newton_tau
from methods.adaptive_pref.tau import quadratic_tau
from reprolab.checks import ConfigError
from reprolab.config import typed  # noqa: F401  (schemas registered by conftest)

X = torch.linspace(-8, 8, 161, dtype=torch.float64) + 0.0071


def fq(tau, d, rho0):
    """One pair's objective: -tau log(2 sigmoid(d/tau)) + rho0 tau^2 (= the loss up to nothing: log 2 folded in)."""
    return -tau * (math.log(2) + F.logsigmoid(d / tau)) + rho0 * tau**2


def test_the_newton_step_uses_the_quadratic_derivatives():
    """One step from tau = 1 with eps -> 0 is tau - f'/f'' with autograd's f' and f''."""
    d, rho0 = X[X.abs() > 0.5], 0.3
    tau = torch.ones_like(d, requires_grad=True)
    (g,) = torch.autograd.grad(fq(tau, d, rho0).sum(), tau, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), tau)
    expect = (1 - g.detach() / h).clamp(0.1, 5.0)
    torch.testing.assert_close(newton_tau(d, 0.1, 5.0, rho0, 1, 1e-300, quadratic=True), expect, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("rho0, tau_max", [(0.05, 5.0), (0.3, 3.0), (1.0, 1e8)])
def test_the_exact_solver_is_the_minimiser_and_converged_newton_reaches_it(rho0, tau_max):
    tau = quadratic_tau(X, 0.1, tau_max, rho0)
    for d, t in zip(X.tolist()[::8], tau.tolist()[::8]):
        ref = minimize_scalar(lambda s: fq(torch.tensor(s, dtype=torch.float64), torch.tensor(d, dtype=torch.float64), rho0).item(),
                              bounds=(0.1, min(tau_max, 1e3)), method="bounded", options={"xatol": 1e-12})
        assert abs(t - ref.x) < 1e-5, (d, t, ref.x)
    newton = newton_tau(X, 0.1, tau_max, rho0, 60, 1e-300, quadratic=True)
    ok = (newton - tau).abs() < 1e-8
    assert ok.float().mean() > 0.9  # Newton from tau = 1 converges for most margins (not guaranteed at the bounds)
    assert torch.equal(quadratic_tau(X, 0.1, tau_max, rho0), quadratic_tau(-X, 0.1, tau_max, rho0))  # |x| only


@pytest.mark.parametrize("p_star", [0.55, 0.7, 0.85, 0.95])
def test_prop_3_2_expected_loss_minimiser(p_star):
    """§6.9: min over the gap g and tau >= tau0 of p* l(g) + (1 - p*) l(-g) with the quadratic penalty gives
    tau* = max(tau0, (log 2 - H(p*)) / (2 rho0)) and g = tau* logit(p*)."""
    tau0, rho0 = 0.1, 0.2

    def expected(v):
        g, t = torch.tensor(v[0], dtype=torch.float64), torch.tensor(max(v[1], tau0), dtype=torch.float64)
        return (p_star * fq(t, g, rho0) + (1 - p_star) * fq(t, -g, rho0)).item()

    h = -(p_star * math.log(p_star) + (1 - p_star) * math.log(1 - p_star))
    tau_star = max(tau0, (math.log(2) - h) / (2 * rho0))
    res = minimize(expected, x0=[1.0, 1.0], method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000})
    assert abs(max(res.x[1], tau0) - tau_star) < 1e-4
    assert abs(res.x[0] - tau_star * math.log(p_star / (1 - p_star))) < 1e-3


@pytest.mark.parametrize("cls", [AdaptivePrefConfig, AdaDPOConfig])
def test_the_plugins_loss_and_gradient_with_the_quadratic_penalty(cls):
    obj = cls(penalty="quadratic", solver="closed_form", loss_eps=0.0, rho0=0.2, tau_max=4.0)
    x = X.clone().requires_grad_(True)
    losses, stats = obj.pair_losses(x, {})
    tau = quadratic_tau(X, obj.tau0, obj.tau_max, obj.rho0)
    torch.testing.assert_close(stats["tau"], tau)
    torch.testing.assert_close(losses.detach(), -tau * F.logsigmoid(X / tau) + 0.2 * tau**2 - math.log(2) * tau)
    losses.sum().backward()  # tau detached: dL/dx = -(1 - sigmoid(x / tau))
    torch.testing.assert_close(x.grad, -(1 - torch.sigmoid(X / tau)))
    with pytest.raises(ConfigError, match="method.penalty"):
        cls(penalty="cubic")
