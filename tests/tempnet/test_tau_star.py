"""experiments.tempnet.tau_star: the DRO loss's minimiser in tau, found by bisection, is where its autograd
derivative (through methods.dro_lm's loss, for any label) vanishes, tempers to the entropy log K - rho, and
scales with the logits; on a teacher of known entropy order it falls as the entropy rises."""
from __future__ import annotations

import math

import torch

from experiments.tempnet.tau_entropy import spearman
from experiments.tempnet.tau_star import tau_star, tempered_entropy
from methods.dro_lm.loss import dro_terms


def test_tau_star_zeroes_the_dro_derivative_for_every_label():
    torch.manual_seed(0)
    K, rho = 12, 1.3
    h = 2 * torch.randn(5, K, dtype=torch.float64)
    tau = tau_star(h, rho)
    torch.testing.assert_close(tempered_entropy(h, tau), torch.full((5,), math.log(K) - rho, dtype=torch.float64))
    for y in (0, 7):
        t = tau.clone().requires_grad_(True)
        dro_terms(h / t[:, None], t, torch.full((5,), y), rho)["dro"].sum().backward()
        assert t.grad.abs().max() < 1e-5  # dro_terms computes in fp32
        t2 = (1.2 * tau).requires_grad_(True)  # above tau* the dual rises (convex in tau)
        dro_terms(h / t2[:, None], t2, torch.full((5,), y), rho)["dro"].sum().backward()
        assert (t2.grad > 0).all()
    torch.testing.assert_close(tau_star(3 * h, rho), 3 * tau)


def test_tau_star_falls_with_the_teachers_entropy():
    """Teacher rows softmax(u / T) for rising T (rising entropy): tau* of the log-probabilities falls."""
    g = torch.Generator().manual_seed(1)
    u = torch.randn(8, 32, generator=g, dtype=torch.float64)
    temps = torch.logspace(-1, math.log10(3), 8, dtype=torch.float64)
    logp = torch.log_softmax(u / temps[:, None], -1)
    entropy = -(logp.exp() * logp).sum(-1)
    assert spearman(tau_star(logp, 1.0).numpy(), entropy.numpy()) < -0.5
