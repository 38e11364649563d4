"""Decentralised projected gradient: a projection-based baseline (one exchange per iteration).

Nedić, Ozdaglar, Parrilo, "Constrained Consensus and Optimization in Multi-Agent Networks", IEEE
TAC 2010 (projected consensus + gradient), with the gradient taken at the mixed point:

    x_i^{t+1} = Proj_X( (W x^t)_i - alpha_t grad f_i((W x^t)_i) ),
    alpha_t = step0 (schedule ``constant``) or step0 / sqrt(t) (``sqrt``); step0 = 1/L by default.

A constant step converges to a neighbourhood of the optimum whose size shrinks with alpha; the
diminishing one converges, slowly. Uses exact projections (what the projection-free methods avoid).
"""
from __future__ import annotations

import math

from methods.pd_sliding.base import DecentralizedSolver


class DPGSolver(DecentralizedSolver):
    _worker_state = ("x",)

    def __init__(self, problem, method, ctx):
        super().__init__(problem, method, ctx)
        self.x = self.zeros()
        self.step0 = method.step0 if method.step0 is not None else 1.0 / problem.L

    def _iterate(self) -> None:
        t = self.step + 1
        alpha = self.step0 / math.sqrt(t) if self.method.schedule == "sqrt" else self.step0
        x_mix = self.net.mix(self.x)
        self.x = self.p.X.project(x_mix - alpha * self.gradient(x_mix, self.batch_size(t)))

    def output(self):
        return self.x
