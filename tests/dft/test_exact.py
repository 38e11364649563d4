"""DFT on an enumerable output space (spec ../shared/papers/dft.md §6 properties 6 and 7): answers are 2
tokens over 5 symbols (25 outputs), pi_theta(y) = softmax(a)[y0] * softmax(B[y0])[y1] with a table of logits."""
from __future__ import annotations

import itertools

import pytest
import torch

from methods.dft import DFTConfig
from methods.dft.estimator import moving_average

V = 5
Y = torch.tensor(list(itertools.product(range(V), repeat=2)))  # (25, 2)


def logp(theta, y):
    """log pi_theta(y) for rows y (n, 2); theta = (a (V,), b (V, V))."""
    a, b = theta
    return torch.log_softmax(a, 0)[y[:, 0]] + torch.log_softmax(b, 1)[y[:, 0], y[:, 1]]


def random_theta(seed, grad=True):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(V, generator=g, dtype=torch.float64).requires_grad_(grad),
            torch.randn(V, V, generator=g, dtype=torch.float64).requires_grad_(grad)]


def exact_objective(theta, y_star, tau):
    """F = -s(y*) + tau log sum_Y exp(s/tau), s = log pi_theta (one prompt)."""
    return -logp(theta, y_star[None])[0] + tau * torch.logsumexp(logp(theta, Y) / tau, 0)


def sample(theta, m, seed):
    probs = logp(theta, Y).exp().detach()
    return Y[torch.multinomial(probs, m, replacement=True, generator=torch.Generator().manual_seed(seed))]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_dft_at_tau_one_is_sft(seed):
    theta, y_star = random_theta(seed), torch.tensor([3, 1])
    f = exact_objective(theta, y_star, 1.0)
    nll = -logp(theta, y_star[None])[0]
    assert f.item() == pytest.approx(nll.item(), abs=1e-12)
    g_f = torch.autograd.grad(f, theta)
    g_sft = torch.autograd.grad(-logp(theta, y_star[None])[0], theta)
    for a, b in zip(g_f, g_sft):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_below_tau_one_the_partition_is_negative_and_the_gradient_differs():
    theta, y_star = random_theta(0), torch.tensor([3, 1])
    partition = torch.logsumexp(logp(theta, Y) / 0.5, 0)
    assert partition.item() < 0
    g_f = torch.autograd.grad(exact_objective(theta, y_star, 0.5), theta)
    g_sft = torch.autograd.grad(-logp(theta, y_star[None])[0], theta)
    assert max((a - b).abs().max().item() for a, b in zip(g_f, g_sft)) > 1e-2


def test_negative_term_gradient_averages_to_zero_at_the_reference():
    """Negatives drawn from pi_ref = pi_theta, tau 1, gamma 1: one step's negative-term gradient is
    mean_j grad log pi(y'_j), whose expectation is 0 (within 4 standard errors, m = 10^4)."""
    theta, m = random_theta(1), 10_000
    negs = sample(theta, m, seed=0)
    lp_neg = logp(theta, negs)
    per_sample = [torch.cat([g.flatten() for g in torch.autograd.grad(lp_neg[j], theta, retain_graph=True)])
                  for j in range(0, m, 10)]  # per-sample gradients on a tenth of them for the standard error
    se = torch.stack(per_sample).std(0) / m**0.5
    lp_pos = logp(theta, torch.tensor([[3, 1]]))
    cfg = DFTConfig(tau=1.0, gamma=1.0)
    out = cfg.step(lp_pos, torch.ones(1), lp_neg[None], torch.ones(1, m), lp_neg.detach()[None], torch.tensor([0]))
    assert out["weight"].item() == pytest.approx(1.0, abs=1e-12)  # d = 0: every weight is 1
    g_total = torch.cat([g.flatten() for g in torch.autograd.grad(out["loss"], theta, retain_graph=True)])
    g_pos = torch.cat([g.flatten() for g in torch.autograd.grad(-lp_pos[0], theta)])
    g_neg = g_total - g_pos
    assert (g_neg.abs() < 4 * se + 1e-12).all(), (g_neg / se).abs().max()
    assert (g_pos.abs() > 4 * se).any()  # the test could tell a non-zero gradient apart


@pytest.mark.parametrize("tau", [1.0, 0.7])
def test_importance_sampling_estimate_converges_to_the_partition(tau):
    theta, ref = random_theta(2, grad=False), random_theta(3, grad=False)
    m = 100_000
    negs = sample(ref, m, seed=1)
    d = logp(theta, negs) / tau - logp(ref, negs)  # DFT's log-weights
    estimate = moving_average(torch.zeros(1, dtype=torch.float64), d[None], 1.0).exp().item()
    exact = torch.exp(logp(theta, Y) / tau).sum().item()
    se = d.exp().std().item() / m**0.5
    assert abs(estimate - exact) < 3 * se, (estimate, exact, se)
