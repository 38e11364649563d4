"""GD, NAG, AltGD and heavy ball on ``f(X, Y) = 1/2 ||X Y^T D - B||_F^2`` (arXiv:2410.09640).

With R_t = X_t Y_t^T D - B and eta, beta from `NagMF`:

    GD     X+ = X - eta R D^T Y,               Y+ = Y - eta D R^T X
    AltGD  X+ = X - eta R D^T Y,               Y+ = Y - eta D R(X+, Y)^T X+
    NAG    X~ = X + beta (X - X_prev), Y~ = Y + beta (Y - Y_prev)   (X_prev = X0 at t = 0)
           X+, Y+ = the GD step taken from (X~, Y~)
    HB     X+ = X - eta R D^T Y + beta (X - X_prev),  same for Y

NAG with beta = 0 executes exactly the GD arithmetic (X~ = X + 0 (X - X_prev) = X), so the two
agree bit for bit. The stopping rule is the paper's: the first t with ||R_t||_F <= eps ||B||_F;
``iters_to_eps`` is that t (gradient steps taken before reaching it).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from reprolab.roles import Solver


def _svdvals(t: torch.Tensor) -> np.ndarray:
    return np.linalg.svd(t.detach().cpu().double().numpy(), compute_uv=False)


class FactorizationSolver(Solver):
    def __init__(self, problem, method, ctx):
        self.p, self.method = problem, method
        self.algorithm = method.algorithm
        dev, dt = problem.B.device, problem.B.dtype
        N = problem.B.shape[1]
        rng = np.random.default_rng(method.phi_seed)
        s1_D, smin_D = problem.data_sv
        if method.init == "unbalanced":
            phi = rng.standard_normal((N, problem.d)) / math.sqrt(problem.d)
            X0 = method.c * problem.B @ torch.as_tensor(phi, dtype=dt, device=dev)
            Y0 = torch.zeros(problem.n, problem.d, dtype=dt, device=dev)
            sx = _svdvals(X0)
            L0, mu0 = sx[0] ** 2 * s1_D ** 2, sx[problem.r - 1] ** 2 * smin_D ** 2
            eta = 1.0 / L0
        else:
            scale = method.init_scale or 1e-3 * math.sqrt(problem.sigma[0]) / (problem.m + problem.n) ** 0.25
            X0 = torch.as_tensor(scale * rng.standard_normal((problem.m, problem.d)), dtype=dt, device=dev)
            Y0 = torch.as_tensor(scale * rng.standard_normal((problem.n, problem.d)), dtype=dt, device=dev)
            L0 = method.balanced_eta_factor * problem.sigma[0] * s1_D ** 2
            mu0 = problem.sigma[-1] * smin_D ** 2
            eta = 1.0 / L0
        self.L0, self.mu0 = float(L0), float(mu0)
        self.eta = float(method.eta if method.eta is not None else eta)
        q = math.sqrt(self.eta * self.mu0)
        self.beta = float(method.beta if method.beta is not None else (1 - q) / (1 + q))
        if self.algorithm in ("gd", "altgd"):
            self.beta = 0.0
        self.X0, self.Y0 = X0, Y0
        self.X, self.Y = X0.clone(), Y0.clone()
        self.Xp, self.Yp = X0.clone(), Y0.clone()
        self.B_norm = float(torch.linalg.vector_norm(problem.B))
        self.tol = method.eps * self.B_norm
        self.step, self.hit = 0, -1

    # ---- one iteration ----------------------------------------------------------------------
    def _error(self):
        """(R or None, ||R_t||) at the current iterate; R is reused by the update when it can be."""
        if self.algorithm == "nag":
            return None, torch.linalg.vector_norm(self.p.residual(self.X, self.Y))
        R = self.p.residual(self.X, self.Y)
        return R, torch.linalg.vector_norm(R)

    def _update(self, R) -> None:
        p, eta, X, Y = self.p, self.eta, self.X, self.Y
        if self.algorithm == "gd":
            self.X, self.Y = p.step_x(X, Y, R, eta), p.step_y(X, Y, R, eta)
        elif self.algorithm == "altgd":
            Xn = p.step_x(X, Y, R, eta)
            self.X, self.Y = Xn, p.step_y(Xn, Y, p.residual(Xn, Y), eta)
        elif self.algorithm == "nag":
            Xt, Yt = X.add(X - self.Xp, alpha=self.beta), Y.add(Y - self.Yp, alpha=self.beta)
            Rt = p.residual(Xt, Yt)
            self.Xp, self.Yp = X, Y
            self.X, self.Y = p.step_x(Xt, Yt, Rt, eta), p.step_y(Xt, Yt, Rt, eta)
        else:  # heavy_ball
            Xn = p.step_x(X, Y, R, eta).add_(X - self.Xp, alpha=self.beta)
            Yn = p.step_y(X, Y, R, eta).add_(Y - self.Yp, alpha=self.beta)
            self.Xp, self.Yp, self.X, self.Y = X, Y, Xn, Yn

    # ---- Solver -----------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.hit >= 0

    def advance(self, steps: int) -> None:
        at, errs = [], []  # errors not yet compared with tol: one device sync per check_every
        for _ in range(steps):
            if self.done:
                return
            R, err = self._error()
            at.append(self.step)
            errs.append(err)
            if len(errs) == self.method.check_every:
                if self._check(at, errs):
                    return
                at, errs = [], []
            self._update(R)
            self.step += 1
        self._check(at, errs)

    def _check(self, at: list[int], errs: list) -> bool:
        """Set ``hit`` to the first measured step whose error is <= tol; True when there is one."""
        if not errs or self.method.eps == 0:
            return False
        below = (torch.stack(errs) <= self.tol).nonzero()
        if len(below) == 0:
            return False
        self.hit = at[int(below[0, 0])]
        return True

    def metrics(self) -> dict[str, float]:
        R = self.p.residual(self.X, self.Y)
        err = float(torch.linalg.vector_norm(R))
        loss = 0.5 * err ** 2
        x0 = float(torch.linalg.vector_norm(self.X0))
        G0 = self.X0.T @ self.X0 - self.Y0.T @ self.Y0
        G = self.X.T @ self.X - self.Y.T @ self.Y
        return {
            "rel_err": err / self.B_norm,
            "loss": loss,
            "gap": loss,  # f* = 0: B is exactly reachable (d >= r; labels W* D in the linear network)
            "x_drift": float(torch.linalg.vector_norm(self.X - self.X0)) / x0 if x0 > 0 else math.nan,
            "imbalance_drift": float(torch.linalg.vector_norm(G - G0)) / max(float(torch.linalg.vector_norm(G0)), 1e-300),
            "grad_evals": self.step,
            "samples": self.step,
            "lo_calls": 0,
            "comm_rounds": 0,
            "consensus": 0.0,
        }

    def summary(self) -> dict[str, float]:
        return {
            "iters_to_eps": float(self.hit) if self.done else math.nan,
            "converged": float(self.done),
            "L0_over_mu0": self.L0 / self.mu0,
            "eta": self.eta,
            "beta": self.beta,
            "kappa": self.p.kappa,
        }

    def state_dict(self) -> dict:
        return {"worker": {}, "shared": {"X": self.X, "Y": self.Y, "Xp": self.Xp, "Yp": self.Yp,
                                         "step": self.step, "hit": self.hit}}

    def load_state_dict(self, state: dict) -> None:
        sh = state["shared"]
        dev, dt = self.X.device, self.X.dtype
        self.X, self.Y, self.Xp, self.Yp = (sh[k].to(dev, dt) for k in ("X", "Y", "Xp", "Yp"))
        self.step, self.hit = int(sh["step"]), int(sh["hit"])
