from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional

from reprolab.roles.base import Method

if TYPE_CHECKING:
    import torch

# Every solver reports these in `Solver.metrics()` (the runner checks), so that runs of different
# papers and baselines can be put on the same axes: oracle calls, communication, accuracy.
COUNTERS = (
    "grad_evals",   # gradient-oracle calls per worker (one full or mini-batch gradient each)
    "samples",      # per-sample gradients drawn per worker (= grad_evals x local size when exact)
    "lo_calls",     # linear-optimisation-oracle calls, summed over workers
    "comm_rounds",  # neighbour exchanges (one per Laplacian / mixing-matrix product)
    "gap",          # objective gap F(x) - F* at the solver's output point
    "consensus",    # consensus residual of the output, sqrt(x^T (L_G kron I) x); 0 when centralised
)


@dataclass
class SolveContext:
    """What the `numeric` runner hands to problems and solvers in each process.

    ``rank``/``world_size``: this process among the processes of the run (the ``distributed``
    backend starts one per worker of a decentralised problem; otherwise 1). ``all_reduce``
    sums a tensor over those processes (Fabric's collective, with the run's timeout); it is the
    identity in a single process. ``timeout_s`` bounds every collective and point-to-point wait.
    ``cache_dir``: where expensive, deterministic by-products (reference solutions) are kept.
    """

    device: Any
    dtype: Any
    seed: int
    cache_dir: Path
    rank: int = 0
    world_size: int = 1
    timeout_s: float = 60.0
    all_reduce: Optional[Callable[["torch.Tensor"], "torch.Tensor"]] = None

    def reduce_sum(self, t: "torch.Tensor") -> "torch.Tensor":
        return t if self.all_reduce is None or self.world_size == 1 else self.all_reduce(t)


class ProblemSpec(ABC):
    """Role of a ``problem`` config (group ``problem``): a typed spec that builds an optimisation problem.

    Subclasses are dataclasses registered with ``@schema("problem", name)``; their fields are the
    problem's sizes and seeds. ``build(ctx)`` returns the problem object the solvers of one paper
    understand (they check its type and say which problems they accept).
    """

    def processes(self) -> int:
        """Processes the ``distributed`` backend starts for this problem (one per worker)."""
        return 1

    def prepare(self, ctx: SolveContext) -> None:
        """Once per run, in the launching process, before any worker starts (e.g. cache F*)."""

    @abstractmethod
    def build(self, ctx: SolveContext) -> Any:
        """The problem, with the data this process owns, on ``ctx.device`` in ``ctx.dtype``."""


class Solver(ABC):
    """A running solve. The runner drives it in chunks: ``advance``, log ``metrics``, checkpoint.

    ``step`` counts iterations (outer iterations for two-level methods). ``state_dict`` returns
    ``{"worker": {name: tensor with a leading axis over this process's workers}, "shared": {...}}``:
    the runner gathers the worker entries of all processes into one checkpoint, so a run saved by
    one backend resumes under another.
    """

    step: int = 0

    @property
    def done(self) -> bool:
        """True once the solver's own stopping rule holds (e.g. relative error <= eps)."""
        return False

    @abstractmethod
    def advance(self, steps: int) -> None:
        """Run up to ``steps`` iterations; may stop early when ``done``."""

    @abstractmethod
    def metrics(self) -> dict[str, float]:
        """Scalars at the current iterate: every key of `COUNTERS` plus the solver's own.

        Collective in the distributed backend: every process calls it; all get the same numbers.
        """

    def summary(self) -> dict[str, float]:
        """Final numbers beyond `metrics` (e.g. iterations to reach eps); keys without prefix."""
        return {}

    @abstractmethod
    def state_dict(self) -> dict:
        """``{"worker": {...}, "shared": {...}}`` (see the class docstring)."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None:
        """Restore from `state_dict` output (worker entries already sliced to this process)."""


class SolverMethod(Method, ABC):
    """Role: an iterative solver for the ``numeric`` runner (optimisation problems, not NN training).

    ``build_solver(problem, ctx)`` returns a `Solver` for a problem built by a `ProblemSpec`; it
    raises a `ConfigError` naming the problems it accepts when given another kind.
    """

    role: ClassVar[str] = "solver"

    @abstractmethod
    def build_solver(self, problem: Any, ctx: SolveContext) -> Solver:
        """Return a fresh `Solver` at the method's initial point."""
