"""pd_sliding: decentralised primal-dual sliding with CGS inner loop, its baselines, its problems.

Paper: Hoang Huy Nguyen, Yan Li, Tuo Zhao, "Stochastic Constrained Decentralized Optimization for
Machine Learning with Fewer Data Oracles: a Gradient Sliding Approach", arXiv:2404.02511. Only
the abstract could be read: the schedules are the reconstruction of ../shared/papers/pd_sliding.md
§2 (PDS outer loop of Lan–Ouyang–Zhou, CndG of Lan–Zhou), as each field says.

Methods: ``pd_sliding`` (deterministic or growing mini-batches; CndG or exact inner step), and the
baselines ``defw`` (decentralised Frank–Wolfe, Wai et al. 2017; deterministic or stochastic),
``cgs`` (centralised conditional gradient sliding) and ``dpg`` (decentralised projected gradient).
Problems: ``l1_least_squares`` (synthetic, spec §5) and ``libsvm_logistic`` (a9a, w8a).
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import List, Optional

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import ProblemSpec, SolverMethod

GRAPHS = ("ring", "grid", "complete", "erdos_renyi")
CONSTRAINTS = ("l1", "nuclear", "none")


@dataclass
class GraphSpec:
    """kind: ring | grid (rows x cols, rows the largest divisor of m <= sqrt(m)) | complete |
    erdos_renyi (edge probability p, drawn from default_rng(seed); must come out connected)."""

    kind: str = "ring"
    p: float = 0.3
    seed: int = 0


@dataclass
class ConstraintSpec:
    """X = {||x|| <= radius}: ``l1`` ball, ``nuclear`` ball of x reshaped to ``shape`` (p, q), or ``none``."""

    kind: str = "l1"
    radius: float = 1.0
    shape: Optional[List[int]] = None


@dataclass
class DecentralizedProblemSpec(ProblemSpec):
    """Shared fields: ``workers`` (m), ``graph``, ``constraint``. Builds a `FiniteSumProblem`."""

    workers: int = 8
    graph: GraphSpec = field(default_factory=GraphSpec)
    constraint: ConstraintSpec = field(default_factory=ConstraintSpec)

    def _check_common(self, dim: Optional[int]) -> None:
        if not (isinstance(self.workers, int) and self.workers >= 1):
            raise checks.ConfigError(f"problem.workers={self.workers!r} is out of range: it must be an integer >= 1.")
        checks.one_of("problem.graph.kind", self.graph.kind, GRAPHS)
        checks.one_of("problem.constraint.kind", self.constraint.kind, CONSTRAINTS)
        if self.constraint.kind != "none" and not (self.constraint.radius > 0):
            raise checks.ConfigError(f"problem.constraint.radius={self.constraint.radius!r} is out of range: the ball "
                                     "{||x|| <= radius} needs radius > 0 (or problem.constraint.kind=none).")
        if self.constraint.kind == "nuclear":
            shape = self.constraint.shape
            if not shape or len(shape) != 2 or (dim is not None and shape[0] * shape[1] != dim):
                raise checks.ConfigError(f"problem.constraint.shape={shape} must be [p, q] with p * q = {dim} "
                                         "(the variable reshaped to a matrix for the nuclear norm).")

    def processes(self) -> int:
        return self.workers

    # ---- what subclasses provide --------------------------------------------------------------
    loss = "least_squares"

    @abstractmethod
    def shards(self):
        """(A_i list, y_i list) over all workers (numpy)."""

    def weight(self, shards) -> float:
        return 1.0

    def fingerprint(self) -> dict:
        """What the reference solution depends on (the cache key)."""
        from dataclasses import asdict

        return {"problem": type(self).__name__, **asdict(self)}

    # ---- ProblemSpec -------------------------------------------------------------------------
    def constraint_set(self):
        from methods.pd_sliding.oracles import L1Ball, NuclearBall, Unconstrained

        c = self.constraint
        if c.kind == "l1":
            return L1Ball(float(c.radius))
        if c.kind == "nuclear":
            return NuclearBall(float(c.radius), tuple(c.shape))
        return Unconstrained()

    def _reference(self, ctx, shards):
        from methods.pd_sliding.data import full_objective
        from methods.pd_sliding.problems import Reference
        from methods.pd_sliding.reference import cache_key, cached, certificate, projected_newton

        A, y = shards
        X = self.constraint_set()
        key = cache_key(self.fingerprint())

        def compute():
            objective = full_objective(A, y, self.loss, self.weight(shards))
            x, its = projected_newton(objective, X, A[0].shape[1])
            return Reference(f_star=float(objective(x, value_only=True)), x_star=x[0],
                             fw_gap=certificate(objective, X, x), iterations=its)

        return cached(ctx.cache_dir / "reference" / f"{type(self).__name__}-{key}.pt", compute)

    def prepare(self, ctx) -> None:
        self._reference(ctx, self.shards())

    def build(self, ctx):
        from methods.pd_sliding.data import assemble
        from methods.pd_sliding.graphs import make_graph

        graph = make_graph(self.graph.kind, self.workers, self.graph.p, self.graph.seed)
        shards = self.shards()
        workers = list(range(self.workers)) if ctx.world_size == 1 else [ctx.rank]
        problem = assemble(*shards, loss=self.loss, weight=self.weight(shards), graph=graph, X=self.constraint_set(),
                           workers=workers, name=type(self).__name__, seed=ctx.seed, device=ctx.device, dtype=ctx.dtype)
        problem.reference = self._reference(ctx, shards)
        return problem


@schema("problem", "l1_least_squares")
@dataclass
class L1LeastSquares(DecentralizedProblemSpec):
    """f_i(x) = 1/2 ||A_i x - b_i||^2 over ``workers`` workers, x in an l1 (or nuclear) ball.

    Spec §5: 8 workers on a ring, dim 30, 50 samples each with A_i ~ N(0, 1/50), b_i = A_i x0 +
    0.01 noise, x0 5-sparse with ||x0||_1 = 1.5, radius 1 (optimum on the boundary, which DeFW's
    guarantee excludes), data from ``default_rng(seed)``.
    """

    dim: int = 30
    samples_per_worker: int = 50
    sparsity: int = 5
    truth_norm: float = 1.5
    noise: float = 0.01
    seed: int = 0

    def __post_init__(self):
        for key in ("dim", "samples_per_worker", "sparsity"):
            if not (isinstance(getattr(self, key), int) and getattr(self, key) >= 1):
                raise checks.ConfigError(f"problem.{key}={getattr(self, key)!r} is out of range: an integer >= 1.")
        if self.sparsity > self.dim:
            raise checks.ConfigError(f"problem.sparsity={self.sparsity} exceeds problem.dim={self.dim}.")
        checks.non_negative("problem.noise", self.noise)
        checks.positive("problem.truth_norm", self.truth_norm)
        self._check_common(self.dim)

    def shards(self):
        from methods.pd_sliding.data import least_squares_shards

        A, b, _ = least_squares_shards(self)
        return A, b


@schema("problem", "libsvm_logistic")
@dataclass
class LibsvmLogistic(DecentralizedProblemSpec):
    """Logistic regression F(x) = (1/N) sum_s log(1 + exp(-y_s a_s^T x)) on a LIBSVM file, x in an l1 ball.

    The N rows are shuffled with default_rng(shuffle_seed) and split evenly over the workers (spec
    §4 E1: a9a 32,561 x 123, w8a 49,749 x 300). The radius is set per data set in
    conf/problem/*.yaml (half the l1 norm of the unconstrained minimiser, so that the constraint
    is active: spec §4).
    """

    path: str = "${paths.data_dir}/libsvm/a9a"
    n_features: int = 123
    shuffle_seed: int = 0
    loss = "logistic"

    def __post_init__(self):
        if not (isinstance(self.n_features, int) and self.n_features >= 1):
            raise checks.ConfigError(f"problem.n_features={self.n_features!r} is out of range: an integer >= 1.")
        self._check_common(self.n_features)

    def shards(self):
        from methods.pd_sliding.data import libsvm_shards

        return libsvm_shards(self)

    def weight(self, shards) -> float:
        return 1.0 / sum(len(y) for y in shards[1])

    def fingerprint(self) -> dict:
        import hashlib
        from pathlib import Path

        digest = hashlib.sha256(Path(self.path).read_bytes()).hexdigest()
        return {**super().fingerprint(), "path": digest}


class _Batched:
    """Mini-batches b_t = ceil(batch0 t^batch_power) per worker at iteration t (batch0 = 0: exact)."""

    def _check_batch(self):
        checks.non_negative("method.batch0", self.batch0)
        checks.non_negative("method.batch_power", self.batch_power)


@schema("solver", "pd_sliding")
@dataclass
class PDSlidingConfig(SolverMethod, _Batched):
    """Decentralised primal-dual sliding + CndG (methods/pd_sliding/pds.py has the algorithm).

    R: dual-radius scaling in T_k = ceil(k R ||L_G|| / L) and q_t = L T_k / (2 beta_k R^2) (spec
      §2.2: tune on {0.1, 0.3, 1, 3, 10}; the toy uses 1).
    inner: ``cndg`` (projection-free, the paper's method) or ``exact`` (projection; Lan–Ouyang–Zhou).
    delta_scale: C_delta of the CndG tolerance delta_{k,t} = C_delta L D_X^2 / (k T_k (t+1)) (ours).
    max_lo: cap on LO calls per CndG subproblem (hits are counted in lo_unconverged).
    mu: strong convexity modulus (0: convex schedule).
    batch0, batch_power: stochastic variant, b_k = ceil(batch0 k^batch_power) (spec: power 3).
    """

    R: float = 1.0
    inner: str = "cndg"
    delta_scale: float = 1.0
    max_lo: int = 100_000
    mu: float = 0.0
    batch0: float = 0.0
    batch_power: float = 3.0

    def __post_init__(self):
        checks.positive("method.R", self.R)
        checks.one_of("method.inner", self.inner, ("cndg", "exact"))
        checks.positive("method.delta_scale", self.delta_scale)
        checks.positive("method.max_lo", self.max_lo)
        checks.non_negative("method.mu", self.mu)
        self._check_batch()

    def build_solver(self, problem, ctx):
        from methods.pd_sliding.pds import PDSlidingSolver

        return PDSlidingSolver(problem, self, ctx)


@schema("solver", "defw")
@dataclass
class DeFWConfig(SolverMethod, _Batched):
    """Decentralised Frank–Wolfe (Wai et al. 2017), Metropolis weights, gamma_t = 2/(t+1).

    batch0, batch_power: stochastic DeFW with b_t = ceil(batch0 t^batch_power) (power 0: constant
    batches; spec §5 compares b_t in {1, 16, t^2}).
    """

    batch0: float = 0.0
    batch_power: float = 0.0

    def __post_init__(self):
        self._check_batch()

    def build_solver(self, problem, ctx):
        from methods.pd_sliding.defw import DeFWSolver

        return DeFWSolver(problem, self, ctx)


@schema("solver", "cgs")
@dataclass
class CGSConfig(SolverMethod):
    """Centralised conditional gradient sliding (Lan & Zhou 2016); delta_scale scales eta_k."""

    delta_scale: float = 1.0
    max_lo: int = 100_000

    def __post_init__(self):
        checks.positive("method.delta_scale", self.delta_scale)
        checks.positive("method.max_lo", self.max_lo)

    def build_solver(self, problem, ctx):
        from methods.pd_sliding.cgs import CGSSolver

        return CGSSolver(problem, self, ctx)


@schema("solver", "dpg")
@dataclass
class DPGConfig(SolverMethod, _Batched):
    """Decentralised projected gradient (Nedić et al. 2010); step0 = null means 1/L."""

    step0: Optional[float] = None
    schedule: str = "constant"
    batch0: float = 0.0
    batch_power: float = 0.0

    def __post_init__(self):
        if self.step0 is not None:
            checks.positive("method.step0", self.step0)
        checks.one_of("method.schedule", self.schedule, ("constant", "sqrt"))
        self._check_batch()

    def build_solver(self, problem, ctx):
        from methods.pd_sliding.dpg import DPGSolver

        return DPGSolver(problem, self, ctx)
