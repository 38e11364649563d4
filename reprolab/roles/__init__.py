"""The roles a method plugin can fill, one small interface each.

A method's typed config *is* its plugin: a dataclass whose fields are the hyperparameters (the
schema Hydra checks overrides against) and whose methods are the role hooks a runner calls.
`OmegaConf.to_object(cfg.method)` validates the values (``__post_init__``) and returns the plugin.
A runner asks ``isinstance(method, OptimizerMethod)``; it never names a method.

Role classes live here, one file per role, so that no method imports a runner and no runner
imports a method. Hooks import their heavy implementation lazily, so that registering every
schema at start-up stays cheap.
"""
from reprolab.roles.base import Method
from reprolab.roles.cache import CacheMethod
from reprolab.roles.loss import LossMethod
from reprolab.roles.optimizer import OptimizerMethod
from reprolab.roles.solver import COUNTERS, ProblemSpec, SolveContext, Solver, SolverMethod

__all__ = ["Method", "CacheMethod", "LossMethod", "OptimizerMethod", "SolverMethod", "Solver", "ProblemSpec",
           "SolveContext", "COUNTERS"]
