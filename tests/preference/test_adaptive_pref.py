"""Adaptive preference scaling (arXiv:2406.02764) against spec ../shared/papers/adaptive_pref.md §2 and §6."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import minimize_scalar

from methods.adaptive_pref import AdaDPOConfig, AdaptivePrefConfig, closed_form_tau, newton_tau, u_of_rho
from methods.bt import BTConfig
from methods.dpo import DPOConfig
from reprolab.checks import ConfigError
from reprolab.config import typed  # noqa: F401  (schemas registered by conftest)
from reprolab.data.config import PreferenceFeaturesData, PreferenceMarkovData
from reprolab.models.config import MLPReward
from tests.roles.conftest import tiny_lm

X = torch.linspace(-8, 8, 161, dtype=torch.float64) + 0.0071


def f(tau, d, rho0):
    """The per-pair objective of one pair in the code's form: -tau log(2 sigmoid(d/tau)) + rho0 tau."""
    return -tau * (math.log(2) + F.logsigmoid(d / tau)) + rho0 * tau


@pytest.mark.parametrize("rho0, u", [(0.05, 0.6490), (0.1, 0.9434), (0.3, 1.8696), (0.5, 2.9832)])
def test_u_of_rho_matches_the_spec_values(rho0, u):
    assert abs(u_of_rho(rho0) - u) < 1e-4
    p = torch.sigmoid(torch.tensor(u_of_rho(rho0), dtype=torch.float64))
    assert abs(math.log(2) + (p * p.log() + (1 - p) * (1 - p).log()).item() - rho0) < 1e-12


def test_newton_derivatives_match_autograd():
    """§6.1: f' and f'' of the Newton step equal autograd's in float64."""
    d = torch.tensor([-3.0, -0.4, 0.2, 1.0, 5.0], dtype=torch.float64)
    tau = torch.tensor([0.3, 1.2, 0.7, 2.5, 4.0], dtype=torch.float64, requires_grad=True)
    rho0 = 0.1
    (g,) = torch.autograd.grad(f(tau, d, rho0).sum(), tau, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), tau)
    s = torch.sigmoid(d / tau.detach())
    t = tau.detach()
    assert torch.allclose(g.detach(), -torch.log(2 * s) + (1 - s) * d / t + rho0, atol=1e-12)
    assert torch.allclose(h, d**2 / t**3 * s * (1 - s), atol=1e-12)


@pytest.mark.parametrize("rho0, tau_max", [(0.1, 5.0), (0.05, 5.0), (0.1, 1.0), (0.3, 3.0)])
def test_converged_newton_equals_the_closed_form_and_the_entropy_identity(rho0, tau_max):
    """§6.2: the converged Newton solution (K = 50) is clip(|d|/u, tau0, tau_max); in the interior
    H(sigmoid(|d|/tau*)) = log 2 - rho0; it is the brute-force minimiser of f over [tau0, tau_max]."""
    newton = newton_tau(X, 0.1, tau_max, rho0, 50, 1e-8)
    exact = closed_form_tau(X, 0.1, tau_max, rho0)
    converged = (newton - newton_tau(X, 0.1, tau_max, rho0, 49, 1e-8)).abs() < 1e-12
    assert converged.float().mean() > 0.9
    assert (newton - exact)[converged].abs().max() < 1e-6
    inner = (exact > 0.1 + 1e-9) & (exact < tau_max - 1e-9)
    p = torch.sigmoid(X[inner].abs() / exact[inner])
    assert torch.allclose(-(p * p.log() + (1 - p) * (1 - p).log()), torch.full_like(p, math.log(2) - rho0), atol=1e-10)
    for d, t in zip(X[::16].tolist(), exact[::16].tolist()):
        brute = minimize_scalar(lambda s: f(torch.tensor(s, dtype=torch.float64), d, rho0).item(), bounds=(0.1, tau_max),
                                method="bounded", options={"xatol": 1e-10}).x
        assert abs(brute - t) < 1e-5


def test_newton_reproduces_the_official_oscillation_and_the_d_zero_case():
    """§6.3: rho0 = 0.5, tau_max = 3, d = 1: projected Newton alternates 0.1, 3.0, ... (closed form 0.335);
    d = 0 gives tau0 exactly (the Hessian clamp makes a huge step, clipped)."""
    d = torch.tensor([1.0], dtype=torch.float64)
    seq = [newton_tau(d, 0.1, 3.0, 0.5, k, 1e-8).item() for k in range(1, 7)]
    assert seq == pytest.approx([0.1, 3.0, 0.1, 3.0, 0.1, 3.0], abs=1e-12)
    assert abs(closed_form_tau(d, 0.1, 3.0, 0.5).item() - 1 / u_of_rho(0.5)) < 1e-12 and abs(1 / u_of_rho(0.5) - 0.335) < 1e-3
    zero = torch.zeros(3, dtype=torch.float64)
    assert torch.equal(newton_tau(zero, 0.1, 5.0, 0.1, 3, 1e-8), torch.full_like(zero, 0.1))
    assert torch.equal(closed_form_tau(zero, 0.1, 5.0, 0.1), torch.full_like(zero, 0.1))


def test_closed_form_is_symmetric_monotone_and_tau0_beyond_log_2():
    """§6.4."""
    t = closed_form_tau(X, 0.1, 5.0, 0.1)
    assert torch.equal(t, closed_form_tau(-X, 0.1, 5.0, 0.1))
    order = torch.argsort(X.abs())
    assert (t[order].diff() >= 0).all()
    assert torch.equal(closed_form_tau(X, 0.1, 5.0, math.log(2)), torch.full_like(X, 0.1))
    assert torch.equal(closed_form_tau(X, 0.1, 5.0, 1.0), torch.full_like(X, 0.1))


@pytest.mark.parametrize("solver", ["newton", "closed_form"])
def test_gradient_detaches_tau(solver):
    """§6.5: dL_i/dd_i = -(1 - sigmoid(d_i/tau_i)) (tau detached); in the interior -(1 - p) for d > 0 and -p
    for d < 0, p = 0.7198 at rho0 = 0.1; a pair clipped at a bound has the same gradient for every K."""
    obj = AdaptivePrefConfig(rho0=0.1, tau_max=5.0, solver=solver, newton_steps=50, loss_eps=0.0)
    x = X.clone().requires_grad_(True)
    losses, stats = obj.pair_losses(x, {})
    losses.sum().backward()
    tau = stats["tau"]
    assert torch.allclose(x.grad, -(1 - torch.sigmoid(X / tau)), atol=1e-12)
    inner = (tau > 0.1 + 1e-6) & (tau < 5.0 - 1e-6)
    p = 0.7198
    assert inner.any()
    assert torch.allclose(x.grad[inner], torch.where(X[inner] > 0, -(1 - p), -p).double(), atol=1e-4)
    if solver == "newton":
        grads = []
        for k in (3, 5, 50):
            z = X.clone().requires_grad_(True)
            AdaptivePrefConfig(rho0=0.1, tau_max=1.0, newton_steps=k, loss_eps=0.0).pair_losses(z, {})[0].sum().backward()
            grads.append(z.grad)
        big = X.abs() > 3  # tau clipped at tau_max = 1 whatever K
        assert torch.equal(grads[0][big], grads[1][big]) and torch.equal(grads[1][big], grads[2][big])


@pytest.mark.parametrize("solver", ["newton", "closed_form"])
def test_gradients_match_autograd_finite_differences_with_tau_held(solver):
    obj = AdaptivePrefConfig(solver=solver, loss_eps=0.0, tau_max=3.0)
    tau = obj.tau(X)
    x = X.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: -tau * F.logsigmoid(z / tau) + (obj.rho0 - math.log(2)) * tau, (x,))
    z = X.clone().requires_grad_(True)
    obj.pair_losses(z, {})[0].sum().backward()
    x2 = X.clone().requires_grad_(True)
    (-tau * F.logsigmoid(x2 / tau)).sum().backward()
    assert torch.allclose(z.grad, x2.grad, atol=1e-14)


@pytest.mark.parametrize("solver", ["newton", "closed_form"])
def test_tau_bounds_at_one_are_bt_plus_a_constant(solver):
    """§6.6: tau0 = tau_max = 1 gives BT's loss plus rho0 - log 2, and BT's gradients."""
    obj = AdaptivePrefConfig(tau0=1.0, tau_max=1.0, rho0=0.3, solver=solver, loss_eps=0.0)
    x, y = X.clone().requires_grad_(True), X.clone().requires_grad_(True)
    aps, bt = obj.pair_losses(x, {})[0], BTConfig().pair_losses(y, {})[0]
    assert torch.allclose(aps, bt + 0.3 - math.log(2), atol=1e-12)
    aps.sum().backward(), bt.sum().backward()
    assert torch.allclose(x.grad, y.grad, atol=1e-14)


def test_ada_dpo_with_unit_tau_bounds_is_dpo():
    """§6.6: Ada-DPO with tau0 = tau_max = 1 equals DPO (same beta) per pair, up to the constant."""
    batch = next(PreferenceMarkovData(batch_size=6).build(0).train_batches(0, 0, 1))
    policy, reference = tiny_lm(vocab=32, seed=1), tiny_lm(vocab=32, seed=0)
    ada, dpo = AdaDPOConfig(tau0=1.0, tau_max=1.0, loss_eps=0.0), DPOConfig()
    with torch.no_grad():
        x = ada.margins(policy, batch, reference)
        assert torch.equal(x, dpo.margins(policy, batch, reference))
        assert torch.allclose(ada.pair_losses(x, batch)[0], dpo.pair_losses(x, batch)[0] + 0.1 - math.log(2), atol=1e-6)
    obj = AdaDPOConfig()
    obj.loss(policy, batch, reference)
    assert torch.isfinite(obj.taus[batch["pair_id"]]).all()


def test_the_per_pair_objective_is_jointly_convex():
    """§6.7: the Hessian of -tau log sigmoid(d/tau) in (d, tau) is PSD at random points."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        d = (torch.rand(1, generator=gen, dtype=torch.float64) * 16 - 8).item()
        t = (torch.rand(1, generator=gen, dtype=torch.float64) * 5 + 0.1).item()
        hess = torch.autograd.functional.hessian(lambda v: -v[1] * F.logsigmoid(v[0] / v[1]),
                                                 torch.tensor([d, t], dtype=torch.float64))
        assert torch.linalg.eigvalsh(hess).min() >= -1e-10


@pytest.mark.parametrize("p_star", [0.55, 0.65, 0.75, 0.9, 0.97])
def test_prop_3_1_expected_loss_minimiser(p_star):
    """§6.8: min over the gap g and tau of p* l(g) + (1 - p*) l(-g) gives g = tau0 logit(p*) when
    H(p*) + rho0 - log 2 > 0 (ambiguous pair) and tau_max logit(p*) otherwise."""
    tau0, tau_max, rho0 = 0.1, 3.0, 0.1

    def expected(g, t):
        g = torch.tensor(g, dtype=torch.float64)
        return (p_star * f(t, g, rho0) + (1 - p_star) * f(t, -g, rho0)).item()

    best = min(((minimize_scalar(lambda g: expected(g, t), bounds=(-50, 50), method="bounded",
                                 options={"xatol": 1e-10}), t) for t in torch.linspace(tau0, tau_max, 59, dtype=torch.float64).tolist()),
               key=lambda r: r[0].fun)
    h = -(p_star * math.log(p_star) + (1 - p_star) * math.log(1 - p_star))
    tau_star = tau0 if h + rho0 - math.log(2) > 0 else tau_max
    assert abs(best[1] - tau_star) < 1e-9
    assert abs(best[0].x - tau_star * math.log(p_star / (1 - p_star))) < 1e-5


def test_tau_buffer_round_trips_and_refuses_foreign_state():
    source = PreferenceFeaturesData(n_train=40, test_pairs=4, test_items=4, batch_size=16).build(0)
    obj, model = AdaptivePrefConfig(), MLPReward().build()
    stream = source.train_batches(0, 0, 1)
    for _ in range(3):
        out = obj.loss(model, next(stream))
    assert {"tau", "tau_at_min", "tau_at_max"} <= set(out)
    state = obj.state_dict()
    assert state["tau"].shape == (40,) and torch.isfinite(state["tau"]).all()
    assert ((state["tau"] >= 0.1) & (state["tau"] <= 1.0)).all()
    fresh = AdaptivePrefConfig()
    fresh.load_state_dict(state)
    assert torch.equal(fresh.taus, state["tau"])
    with pytest.raises(ValueError, match="keeps only 'tau'"):
        fresh.load_state_dict({"delta": state["tau"]})


@pytest.mark.parametrize("kwargs, key", [
    ({"tau0": 0.0}, "method.tau0"), ({"tau0": -1.0}, "method.tau0"), ({"tau_max": 0.0}, "method.tau_max"),
    ({"tau0": 2.0, "tau_max": 1.0}, "method.tau_max"), ({"rho0": 0.0}, "method.rho0"), ({"rho0": -0.1}, "method.rho0"),
    ({"solver": "bisect"}, "method.solver"), ({"newton_steps": 0}, "method.newton_steps")])
def test_bad_values_are_config_errors_naming_the_key(kwargs, key):
    for cls in (AdaptivePrefConfig, AdaDPOConfig):
        with pytest.raises(ConfigError, match=key):
            cls(**kwargs)


def test_three_newton_steps_trap_some_margins_at_tau0():
    """The cause of the gap collapse in experiments/adaptive_pref/results (analog C): at rho0 = 0.3, tau_max = 3,
    K = 3 official Newton steps from tau = 1 end on tau0 for d = 0.7 and 1.0, where the exact tau is 0.37 and 0.53;
    outside that window they agree with the closed form."""
    d = torch.tensor([0.7, 1.0], dtype=torch.float64)
    assert torch.equal(newton_tau(d, 0.1, 3.0, 0.3, 3, 1e-8), torch.full_like(d, 0.1))
    assert torch.allclose(closed_form_tau(d, 0.1, 3.0, 0.3), d / u_of_rho(0.3))
    ok = torch.tensor([0.3, 1.5, 3.0, 5.0], dtype=torch.float64)
    assert torch.allclose(newton_tau(ok, 0.1, 3.0, 0.3, 3, 1e-8), closed_form_tau(ok, 0.1, 3.0, 0.3), atol=1e-2)
