"""Decentralised Frank–Wolfe (DeFW), deterministic or with mini-batch gradients: the prior work [1].

Wai, Lafond, Scaglione, Moulines, "Decentralized Frank–Wolfe Algorithm for Convex and Non-convex
Problems", IEEE TAC 2017 (arXiv:1612.01216), Algorithm 1, with Metropolis weights W and
gamma_t = 2/(t+1). Iteration t = 1, 2, ... (rows: local workers):

    x_bar^t = W x^t                                             <- exchange 1
    p^t     = p_bar^{t-1} + grad f_i(x_bar^t) - grad f_i(x_bar^{t-1})   (p^1 = grad f_i(x_bar^1))
    p_bar^t = W p^t                                             <- exchange 2 (gradient tracking)
    a^t     = LO(p_bar^t);   x^{t+1} = (1 - gamma_t) x_bar^t + gamma_t a^t

The mixing is applied after the local gradient-tracking update, as in the paper's Algorithm 1
(spec §3 writes W p^{t-1} + ...); this is what makes DeFW on a complete graph with W = 11^T/m
exactly centralised Frank–Wolfe on sum_i f_i. Stochastic DeFW (ours, spec §3.2) replaces each
gradient by a mini-batch of b_t = ceil(batch0 t^batch_power) samples (batch_power 0: constant).
"""
from __future__ import annotations

from methods.pd_sliding.base import DecentralizedSolver


class DeFWSolver(DecentralizedSolver):
    _worker_state = ("x", "p_bar", "g_prev")

    def __init__(self, problem, method, ctx):
        super().__init__(problem, method, ctx)
        problem.X.lo(self.zeros())  # fails early, with the fix, when X has no LO oracle
        self.x, self.p_bar, self.g_prev = self.zeros(), self.zeros(), self.zeros()

    def _iterate(self) -> None:
        t = self.step + 1
        x_bar = self.net.mix(self.x)
        g = self.gradient(x_bar, self.batch_size(t))
        p = g if t == 1 else self.p_bar + (g - self.g_prev)
        self.p_bar = self.net.mix(p)
        a = self.p.X.lo(self.p_bar)
        self.lo += 1
        gamma = 2.0 / (t + 1)
        self.x = x_bar + gamma * (a - x_bar)
        self.g_prev = g

    def output(self):
        return self.x
