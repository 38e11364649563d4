"""Centralised conditional gradient sliding on F = sum_i f_i (a reference, not decentralised).

Lan & Zhou, "Conditional gradient sliding for convex optimization", SIAM J. Optim. 2016,
Algorithm 1 (smooth convex case), from x_0 = y_0 = 0 with L = L_F (smoothness of F):

    gamma_k = 3/(k+2),  beta_k = 3L/(k+1),  eta_k = C L D_X^2 / (k(k+1))     (C = method.delta_scale)
    z_k = (1 - gamma_k) y_{k-1} + gamma_k x_{k-1}
    x_k = CndG(grad F(z_k), x_{k-1}, beta_k, eta_k)   (min <g, x> + beta/2 ||x - x_{k-1}||^2 to Wolfe gap eta)
    y_k = (1 - gamma_k) y_{k-1} + gamma_k x_k            output y_k

Gradients O(sqrt(L D^2 / eps)), LO calls O(L D^2 / eps). One gradient of F = one gradient on
every worker (counted once per worker); no communication is counted (a central server).
"""
from __future__ import annotations

from methods.pd_sliding.base import DecentralizedSolver
from methods.pd_sliding.cndg import cndg


class CGSSolver(DecentralizedSolver):
    _worker_state = ("x", "y")
    centralised = True

    def __init__(self, problem, method, ctx):
        super().__init__(problem, method, ctx)
        problem.X.lo(self.zeros())
        self.x, self.y = self.zeros()[:1], self.zeros()[:1]  # one central iterate

    def _iterate(self) -> None:
        k, L, X = self.step + 1, self.p.L_total, self.p.X
        gamma, beta = 3.0 / (k + 2), 3.0 * L / (k + 1)
        eta = self.method.delta_scale * L * X.diameter ** 2 / (k * (k + 1))
        z = (1 - gamma) * self.y + gamma * self.x
        g = self.gradient(z.expand(len(self.p.workers), -1)).sum(dim=0, keepdim=True)
        x, calls, stuck = cndg(self.x - g / beta, beta, self.x, X, eta, self.method.max_lo)
        self.lo[0] += int(calls.sum())
        self.lo_unconverged += int(stuck.sum())
        self.x, self.y = x, (1 - gamma) * self.y + gamma * x

    def output(self):
        return self.y.expand(len(self.p.workers), -1)

    def state_dict(self) -> dict:  # the central iterate is not per worker
        state = super().state_dict()
        state["shared"].update(x=state["worker"].pop("x"), y=state["worker"].pop("y"))
        return state

    def load_state_dict(self, state: dict) -> None:
        sh = state["shared"]
        state = {"worker": {**state["worker"], "x": sh["x"], "y": sh["y"]}, "shared": sh}
        super().load_state_dict(state)
