"""Schema of the `numeric` runner: how a pure optimisation problem is driven (processes, logging)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, List, Optional

from reprolab import checks
from reprolab.registry import schema
from reprolab.slots import Slot

BACKENDS = ("simulated", "distributed")
START_METHODS = ("fork", "spawn", "forkserver")
DTYPES = ("float64", "float32")


@dataclass
class Budget:
    """Limits on the counters of `reprolab.roles.COUNTERS` that only grow (null: no limit)."""

    grad_evals: Optional[float] = None
    samples: Optional[float] = None
    lo_calls: Optional[float] = None
    comm_rounds: Optional[float] = None

    def limits(self) -> dict[str, float]:
        return {k: v for k, v in vars(self).items() if v is not None}


@schema("runner", "numeric")
@dataclass
class NumericRunner:
    """Drive a `SolverMethod` on a ``problem`` (config group) with Lightning Fabric.

    backend: ``simulated`` runs every worker of a decentralised problem in one process (stacked
      arrays); ``distributed`` starts one process per worker (Fabric DDP on CPU, gloo), and the
      solver exchanges with its graph neighbours by point-to-point messages. Both give the same
      iterates. Problems without workers always run in one process.
    accelerator: Fabric accelerator of the one-process backend (``cpu``, ``gpu``, ``auto``);
      the distributed backend runs on CPU (gloo).
    dtype: floating type of every array (``float64``: the papers' accuracies need it).
    max_steps: iterations to run (outer iterations for two-level methods); a solver may stop
      earlier by its own rule (e.g. relative error <= method.eps).
    log_every: steps between rows of metrics.csv / W&B points; the final step is always logged.
    record_at: steps whose metrics also land in results.json as ``table/<name>@<step>`` (e.g. the
      gap after 10, 20, ... outer iterations, for tables that compare trajectories).
    budget: counter limits checked at every logged step (``runner.budget.samples=1e5``,
      ``runner.budget.comm_rounds=2e4``; null: none): the run stops once a counter reaches its
      limit, for equal-cost comparisons of methods whose iterations cost different amounts.
    checkpoint_every: steps between writes of ``checkpoints/last.ckpt`` (0: only at the end).
    timeout_s: bound on every collective and neighbour exchange: a dead or hung worker makes the
      others fail with an error naming it after this many seconds instead of waiting forever.
    start_method: how the distributed backend starts processes (``fork`` starts in well under a
      second; ``spawn`` re-imports torch in every process).
    """

    slots: ClassVar[dict] = {"solver": Slot(required=True)}
    _target_: str = "runners.numeric.run"
    backend: str = "simulated"
    accelerator: str = "cpu"
    dtype: str = "float64"
    max_steps: int = 1000
    log_every: int = 10
    record_at: List[int] = field(default_factory=list)
    budget: Budget = field(default_factory=Budget)
    checkpoint_every: int = 0
    timeout_s: float = 60.0
    start_method: str = "fork"

    def __post_init__(self):
        checks.one_of("runner.backend", self.backend, BACKENDS)
        checks.one_of("runner.dtype", self.dtype, DTYPES)
        checks.one_of("runner.start_method", self.start_method, START_METHODS)
        checks.positive("runner.max_steps", self.max_steps)
        checks.positive("runner.log_every", self.log_every)
        checks.non_negative("runner.checkpoint_every", self.checkpoint_every)
        checks.positive("runner.timeout_s", self.timeout_s)
        for i, s in enumerate(self.record_at):
            checks.positive(f"runner.record_at[{i}]", s)
        for key, limit in self.budget.limits().items():
            checks.positive(f"runner.budget.{key}", limit)
