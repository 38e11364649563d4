"""Decentralised primal-dual sliding with conditional-gradient inner steps (arXiv:2404.02511).

Nguyen, Li, Zhao, "Stochastic Constrained Decentralized Optimization for Machine Learning with Fewer
Data Oracles: a Gradient Sliding Approach", arXiv:2404.02511. The paper body could not be read;
this is the reconstruction of ../shared/papers/pd_sliding.md §2: the primal-dual sliding outer
loop of Lan, Ouyang & Zhou (arXiv:2101.00143; parameters as in their public reference code) on

    min_{x in X^m} max_z  sum_i f_i(x_i) + <(L_G kron I) x, z>,

whose primal prox step (a Euclidean projection onto X) is solved inexactly by CndG (Lan & Zhou
2016). Outer iteration k = 1..N (convex case, mu = 0 unless method.mu > 0):

    tau_k = (k-1)/2, lambda_k = (k-1)/k, beta_k = k, p_k = 2L/k, T_k = ceil(k R ||L_G|| / L)
    x~_k = x_{k-1} + lambda_k (x^_{k-1} - x_{k-2});   x_k_ = (x~_k + tau_k x_{k-1}_) / (1 + tau_k)
    y_k  = grad f(x_k_)                       <- the only gradient (or mini-batch of b_k samples)
    for t = 1..T_k:                            <- communication sliding: y_k is reused
        eta_t = (p_k + mu)(t-1) + p_k T_k,  q_t = L T_k / (2 beta_k R^2),
        a_t = beta_{k-1} T_k / (beta_k T_{k-1}) if k >= 2 and t = 1 else 1
        u^t = x^{t-1} + a_t (x^{t-1} - x^{t-2})       (x^0 = x_{k-1}, x^{-1} = penultimate of k-1)
        z^t = z^{t-1} + L u^t / q_t                   <- exchange 1
        x^t ~ argmin_X <y_k + L z^t, x> + eta_t/2 ||x - x^{t-1}||^2 + p_k/2 ||x - x_{k-1}||^2
                                                      <- exchange 2; CndG to Wolfe gap delta_{k,t}
    x_k = x^{T_k},  x^_k = mean_t x^t,   output  sum_k beta_k x^_k / sum_k beta_k

delta_{k,t} = C_delta L D_X^2 / (k T_k (t+1)) (spec §2.3, ours). Mini-batches b_k =
ceil(batch0 k^batch_power) (spec: k^3 for the stochastic variant). Shapes: every state tensor is
(local workers, dim). With method.inner=exact the prox step is the exact projection (the
Lan–Ouyang–Zhou method itself; with X = R^d it is their reference update).
"""
from __future__ import annotations

import math

from methods.pd_sliding.base import DecentralizedSolver
from methods.pd_sliding.cndg import cndg


class PDSlidingSolver(DecentralizedSolver):
    _worker_state = ("x_prev", "x_prevprev", "x_hat", "x_under", "x_penult", "z", "x_sum")
    _shared_state = ("beta_sum", "prev_beta", "prev_T")

    def __init__(self, problem, method, ctx):
        super().__init__(problem, method, ctx)
        self.L = problem.L
        self.lap_norm = problem.graph.laplacian_norm()
        if method.inner == "cndg":
            problem.X.lo(self.zeros())  # fails early, with the fix, when X has no LO oracle
        x0 = self.zeros()  # feasible for every ball
        self.x_prev, self.x_prevprev, self.x_hat, self.x_under, self.x_penult = (x0.clone() for _ in range(5))
        self.z, self.x_sum = self.zeros(), self.zeros()
        self.beta_sum, self.prev_beta, self.prev_T = 0.0, 0.0, 0

    def inner_steps(self, k: int) -> int:
        return max(1, math.ceil(k * self.method.R * self.lap_norm / self.L))

    def _iterate(self) -> None:
        m, L, R, mu, net, X = self.method, self.L, self.method.R, self.method.mu, self.net, self.p.X
        k = self.step + 1
        tau, lam, beta, p_k, T = (k - 1) / 2, (k - 1) / k, float(k), 2 * L / k, self.inner_steps(k)
        x_tilde = self.x_prev + lam * (self.x_hat - self.x_prevprev)
        x_under = (x_tilde + tau * self.x_under) / (1 + tau)
        y = self.gradient(x_under, self.batch_size(k))

        x_cur, x_last, z, x_sum_t = self.x_prev, self.x_penult, self.z, self.zeros()
        q = L * T / (2 * beta * R * R)
        for t in range(1, T + 1):
            eta = (p_k + mu) * (t - 1) + p_k * T
            a = self.prev_beta * T / (beta * self.prev_T) if (k >= 2 and t == 1) else 1.0
            u = x_cur + a * (x_cur - x_last)
            z = z + net.lap(u) / q
            center = (eta * x_cur + p_k * self.x_prev - (y + net.lap(z))) / (eta + p_k)
            if m.inner == "exact":
                x_new = X.project(center)
            else:
                delta = m.delta_scale * L * X.diameter ** 2 / (k * T * (t + 1))
                x_new, calls, stuck = cndg(center, eta + p_k, x_cur, X, delta, m.max_lo)
                self.lo += calls.cpu()
                self.lo_unconverged += int(stuck.sum())
            x_last, x_cur = x_cur, x_new
            x_sum_t = x_sum_t + x_cur

        self.x_prevprev, self.x_prev, self.x_penult, self.z = self.x_prev, x_cur, x_last, z
        self.x_hat, self.x_under = x_sum_t / T, x_under
        self.x_sum = self.x_sum + beta * self.x_hat
        self.beta_sum += beta
        self.prev_beta, self.prev_T = beta, T

    def output(self):
        return self.x_sum / self.beta_sum if self.beta_sum > 0 else self.x_prev
