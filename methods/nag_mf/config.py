"""nag_mf: GD / NAG / AltGD / heavy ball on rectangular matrix factorisation and linear networks.

Paper: Zhenghao Xu, Yuqing Wang, Tuo Zhao, Rachel Ward, Molei Tao, "Provable Acceleration of
Nesterov's Accelerated Gradient for Rectangular Matrix Factorization and Linear Neural Networks",
NeurIPS 2024, arXiv:2410.09640. No official code exists; constants below follow the derivation in
../shared/papers/nag_mf.md §2.4 (the paper body could not be read), as noted per field.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import ProblemSpec, SolverMethod

ALGORITHMS = ("gd", "nag", "altgd", "heavy_ball")
INITS = ("unbalanced", "balanced")


def _check_factorization(prefix: str, r: int, d: int, kappa: float, dims: dict) -> None:
    for key, v in {**dims, "r": r, "d": d}.items():
        if not (isinstance(v, int) and v >= 1):
            raise checks.ConfigError(f"{prefix}.{key}={v!r} is out of range: it must be an integer >= 1.")
    if not (isinstance(kappa, (int, float)) and kappa >= 1):
        raise checks.ConfigError(f"{prefix}.kappa={kappa!r} is out of range: a condition number sigma_1/sigma_r "
                                 "is >= 1 (kappa=1: all singular values equal).")
    smallest = min(dims.values())
    if r > smallest:
        raise checks.ConfigError(f"{prefix}.r={r} exceeds the smallest matrix dimension {smallest} ({dims}); "
                                 f"use {prefix}.r <= {smallest}.")
    if d < r:
        raise checks.ConfigError(f"{prefix}.d={d} < {prefix}.r={r}: a width-{d} factorisation cannot reach rank {r}; "
                                 f"use {prefix}.d >= {r} (the paper's exact parameterisation is d = r).")


@schema("problem", "matrix_factorization")
@dataclass
class MatrixFactorization(ProblemSpec):
    """min_{X in R^{m x d}, Y in R^{n x d}} 1/2 ||X Y^T - A||_F^2 with A = U diag(sigma) V^T exactly rank r.

    U (m x r), V (n x r) Haar-orthonormal (QR of Gaussians, signs fixed) drawn in that order from
    ``numpy.random.default_rng(seed)``; sigma geometric from 1 to 1/kappa over r values, so the
    condition number is exactly kappa (spec §4: m=100, n=80, r=5; seed 0).
    """

    m: int = 100
    n: int = 80
    r: int = 5
    d: int = 20
    kappa: float = 10.0
    seed: int = 0

    def __post_init__(self):
        _check_factorization("problem", self.r, self.d, self.kappa, {"m": self.m, "n": self.n})

    def build(self, ctx):
        from methods.nag_mf.problems import matrix_factorization

        return matrix_factorization(self, ctx.device, ctx.dtype)


@schema("problem", "linear_net")
@dataclass
class LinearNet(ProblemSpec):
    """Two-layer linear network min_{W1, W2} 1/2 ||W1 W2 D - L||_F^2, with labels L = W* D.

    W* (m x n_in) = U diag(sigma) V^T of rank r and condition number kappa (as for
    matrix_factorization), D (n_in x samples) Gaussian N(0, 1/samples). Widths: W1 is m x d and
    W2 is d x n_in (spec §5 analog: m=40, n_in=60, samples=100, r=5).
    """

    m: int = 40
    n_in: int = 60
    samples: int = 100
    r: int = 5
    d: int = 20
    kappa: float = 10.0
    seed: int = 0

    def __post_init__(self):
        _check_factorization("problem", self.r, self.d, self.kappa,
                             {"m": self.m, "n_in": self.n_in, "samples": self.samples})

    def build(self, ctx):
        from methods.nag_mf.problems import linear_net

        return linear_net(self, ctx.device, ctx.dtype)


@schema("solver", "nag_mf")
@dataclass
class NagMFConfig(SolverMethod):
    """Gradient methods on ``f(X, Y) = 1/2 ||X Y^T D - B||_F^2`` (D = I: matrix factorisation).

    algorithm: ``gd`` (simultaneous), ``nag`` (extrapolate both factors by beta, gradient at the
      extrapolated point), ``altgd`` (X first, then Y at the new X), ``heavy_ball`` (Polyak).
    init: ``unbalanced`` X0 = c B Phi, Y0 = 0, Phi (N x d) i.i.d. N(0, 1/d) from
      ``numpy.random.default_rng(phi_seed)`` (paper: "X0 large, Y0 = 0"); ``balanced``: both
      factors i.i.d. N(0, init_scale^2), the small-init baseline of prior work.
    c: scale of the unbalanced init (spec §2.2: c = 100 puts the dynamics in the linear regime;
      c = 10 already deviates).
    eta, beta: step and momentum; null = derived. Unbalanced: with L0 = sigma_1(X0)^2 sigma_1(D)^2
      and mu0 = sigma_r(X0)^2 sigma_min(D)^2 (the Y-only dynamics at frozen X0),
      eta = 1/L0 and beta = (sqrt(L0) - sqrt(mu0)) / (sqrt(L0) + sqrt(mu0)) (spec §2.4, ours: the
      paper's constants are unverified). Balanced: eta = 1 / (balanced_eta_factor sigma_1 sigma_1(D)^2),
      beta from mu = sigma_r sigma_min(D)^2 the same way.
    init_scale: std of the balanced init; null = 1e-3 sqrt(sigma_1) / (m + n)^(1/4) (spec §3).
    eps: stop when ||X Y^T D - B||_F <= eps ||B||_F (the paper's target); 0 runs to max_steps.
    check_every: iterations between convergence checks (1: exact stop; larger avoids a device sync
      per iteration on GPU; the reported iterations-to-eps stay exact either way).
    """

    algorithm: str = "nag"
    init: str = "unbalanced"
    c: float = 100.0
    phi_seed: int = 1
    eta: Optional[float] = None
    beta: Optional[float] = None
    init_scale: Optional[float] = None
    balanced_eta_factor: float = 4.0
    eps: float = 1.0e-6
    check_every: int = 1

    def __post_init__(self):
        checks.one_of("method.algorithm", self.algorithm, ALGORITHMS)
        checks.one_of("method.init", self.init, INITS)
        checks.positive("method.c", self.c)
        if self.eta is not None:
            checks.positive("method.eta", self.eta)
        if self.beta is not None:
            checks.in_range("method.beta", self.beta, 0.0, 1.0, hi_open=True)
        if self.init_scale is not None:
            checks.positive("method.init_scale", self.init_scale)
        checks.positive("method.balanced_eta_factor", self.balanced_eta_factor)
        checks.in_range("method.eps", self.eps, 0.0, 1.0, hi_open=True)
        checks.positive("method.check_every", self.check_every)

    def build_solver(self, problem, ctx):
        from methods.nag_mf.problems import FactorizationProblem
        from methods.nag_mf.solver import FactorizationSolver

        if not isinstance(problem, FactorizationProblem):
            raise checks.ConfigError(f"method=nag_mf solves problem=matrix_factorization or problem=linear_net, "
                                     f"not {type(problem).__name__}.")
        return FactorizationSolver(problem, self, ctx)
