"""The KL-DRO next-token loss (spec ../shared/papers/tempnet.md §6.1-6.5): its dual form, the primal at
the optimal tau, the limits in rho, the gradients in the logits and in tau, tau = 1 as cross-entropy,
the loss mask, and the rho >= log K warning."""
from __future__ import annotations

import math

import pytest
import torch

from methods.dro_lm import DroLmConfig, dro_loss, dro_terms

K = 16


def _case(seed=0, n=5, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    h = scale * torch.randn(n, K, generator=g, dtype=torch.float64)
    y = torch.randint(0, K, (n,), generator=g)
    return h, y


def _dual(h, y, tau, rho):
    """tau log((1/K) sum_k exp((h_k - h_y) / tau)) + tau rho, written from the spec's dual."""
    d = h - h.gather(-1, y[:, None])
    return tau * (torch.logsumexp(d / tau, -1) - math.log(K)) + tau * rho


def _terms(h, y, tau, rho):
    """Our per-token loss from the tempered logits h / tau, as the model hands them to the objective."""
    t = torch.full((h.shape[0], 1), tau, dtype=h.dtype) if isinstance(tau, float) else tau
    return dro_terms(h / t, t, y, rho)


def _dual_grad_tau(h, tau, rho):
    """d/dtau of the dual: H(softmax(h / tau)) - (log K - rho), the label cancels (spec §6.5 rewritten)."""
    p = torch.softmax(h / tau, -1)
    return -(p * torch.log_softmax(h / tau, -1)).sum(-1) - math.log(K) + rho


def _tau_star(h_row, rho):
    """The dual's minimiser by bisection on its (increasing) derivative."""
    lo, hi = 1e-6, 1e8
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if _dual_grad_tau(h_row, mid, rho) < 0 else (lo, mid)
    return math.sqrt(lo * hi)


@pytest.mark.parametrize("tau", [0.05, 0.7, 1.0, 4.0])
def test_loss_equals_the_dual_form(tau):
    h, y = _case()
    rho = 1.3
    ours = _terms(h.double(), y, tau, rho)["dro"].double()
    torch.testing.assert_close(ours, _dual(h, y, tau, rho).float().double(), rtol=1e-6, atol=1e-6)


def test_primal_equals_dual_at_the_optimal_tau():
    """max_{KL(p||u) <= rho} sum_k p_k (h_k - h_y) is reached by p ∝ exp((h - h_y)/tau*), KL(p*||u) = rho."""
    h, y = _case(seed=1, n=3)
    rho = 0.8
    for i in range(3):
        t = _tau_star(h[i], rho)
        d = h[i] - h[i, y[i]]
        p = torch.softmax(d / t, -1)
        kl = (p * (p.log() + math.log(K))).sum()
        assert abs(float(kl) - rho) < 1e-6
        primal = (p * d).sum()
        torch.testing.assert_close(primal, _dual(h[i : i + 1], y[i : i + 1], t, rho)[0], rtol=1e-6, atol=1e-8)
        for other in (0.5 * t, 2 * t):  # the minimum over tau
            assert _dual(h[i : i + 1], y[i : i + 1], other, rho)[0] > primal


def test_limits_in_rho():
    """rho -> 0: tau* -> infinity and the loss -> mean_k (h_k - h_y); rho >= log K: tau* -> 0, loss -> max_k h_k - h_y."""
    h, y = _case(seed=2, n=4)
    d = h - h.gather(-1, y[:, None])
    for i in range(4):
        small, big = _tau_star(h[i], 1e-8), _tau_star(h[i], math.log(K) + 0.5)
        torch.testing.assert_close(_dual(h[i : i + 1], y[i : i + 1], small, 1e-8)[0], d[i].mean(), rtol=0, atol=1e-3)
        torch.testing.assert_close(_dual(h[i : i + 1], y[i : i + 1], big, math.log(K) + 0.5)[0], d[i].max(),
                                   rtol=0, atol=1e-3)
    assert _tau_star(h[0], 1e-4) > 50 * _tau_star(h[0], 1.0)
    assert _tau_star(h[0], math.log(K) - 1e-3) < 0.2 * _tau_star(h[0], 1.0)


def test_gradient_in_the_logits_is_tempered_ce():
    """d/dh [tau CE(h/tau, y) + tau (rho - log K)] = softmax(h/tau) - e_y: tau cancels."""
    h, y = _case(seed=3)
    h.requires_grad_(True)
    tau = torch.rand(h.shape[0], 1, dtype=torch.float64) * 2 + 0.1
    dro_terms(h / tau, tau, y, 2.0)["dro"].sum().backward()
    expected = torch.softmax(h.detach() / tau, -1) - torch.nn.functional.one_hot(y, K)
    torch.testing.assert_close(h.grad, expected.to(h.grad), rtol=1e-5, atol=1e-6)


def test_gradient_in_tau_and_its_sign_around_the_optimum():
    h, y = _case(seed=4, n=3)
    rho = 1.0
    for i in range(3):
        t_star = _tau_star(h[i], rho)
        for t0, sign in ((0.5 * t_star, -1), (2.0 * t_star, 1)):
            tau = torch.tensor([[t0]], dtype=torch.float64, requires_grad=True)
            dro_terms(h[i : i + 1] / tau, tau, y[i : i + 1], rho)["dro"].sum().backward()
            d = h[i] - h[i, y[i]]
            spec = torch.logsumexp(d / t0, -1) - math.log(K) + rho - (torch.softmax(d / t0, -1) * d / t0).sum()
            torch.testing.assert_close(tau.grad[0, 0], spec, rtol=1e-5, atol=1e-6)
            assert sign * float(tau.grad) > 0


def test_tau_one_reduces_to_cross_entropy():
    h, y = _case(seed=5)
    terms = _terms(h, y, 1.0, 2.0)
    ce = torch.nn.functional.cross_entropy(h, y, reduction="none")
    torch.testing.assert_close(terms["dro"].double(), (ce + 2.0 - math.log(K)).float().double(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(terms["nll"].double(), ce.float().double())


def test_loss_mask_labels_versus_the_official_none():
    h, y = _case(seed=6, n=6)
    tau = torch.full((6, 1), 0.5, dtype=torch.float64)
    masked = y.clone()
    masked[:2] = -100
    terms = dro_terms(h / tau, tau, masked, 1.0)
    assert torch.allclose(dro_loss(terms, "labels"), terms["dro"][2:].mean())
    # the official mean runs over every position: a masked one adds its tau (rho - log K)
    official = (terms["dro"][2:].sum() + 2 * 0.5 * (1.0 - math.log(K))) / 6
    assert torch.allclose(dro_loss(terms, "none"), official.float())
    full = dro_terms(h / tau, tau, y, 1.0)
    assert torch.equal(dro_loss(full, "labels"), dro_loss(full, "none"))


def test_rho_at_or_above_log_k_warns_naming_the_bound():
    cfg = DroLmConfig(rho=5.0)
    with pytest.warns(UserWarning, match=r"log K = 2\.7726 \(K = 16"):
        cfg.check_rho(K)
    DroLmConfig(rho=2.0).check_rho(K)  # below the bound: silent (pytest turns no warning into none)


def test_objective_without_a_temperature_names_the_fix():
    from reprolab.checks import ConfigError
    from tests.roles.conftest import tiny_lm

    ids = torch.randint(0, 32, (2, 6))
    with pytest.raises(ConfigError, match="temperature=tempnet"):
        DroLmConfig().loss(tiny_lm(), {"input_ids": ids, "labels": ids})
