"""The roles a plugin can fill, one small interface each (the slots of a run: `reprolab.registry.ROLES`).

A plugin's typed config *is* the plugin: a dataclass whose fields are the hyperparameters (the
schema Hydra checks overrides against) and whose methods are the role hooks a runner calls. Its
class says which slot it fills (``role``). The core converts and validates each slot once
(`reprolab.slots`) and hands the runner a `Roles` of typed plugins; a runner never names a method.

Role classes live here, one file per role, so that no method imports a runner and no runner
imports a method. Hooks import their heavy implementation lazily, so that registering every
schema at start-up stays cheap.
"""
from reprolab.roles.adapter import AdapterMethod
from reprolab.roles.base import Method
from reprolab.roles.cache import CacheMethod
from reprolab.roles.objective import DATA_KINDS, ObjectiveMethod
from reprolab.roles.optimizer import OptimizerMethod
from reprolab.roles.solver import COUNTERS, ProblemSpec, SolveContext, Solver, SolverMethod
from reprolab.roles.steering import SteeringMethod
from reprolab.roles.temperature import TemperatureMethod

__all__ = ["Method", "CacheMethod", "ObjectiveMethod", "DATA_KINDS", "OptimizerMethod", "SolverMethod", "Solver",
           "ProblemSpec", "SolveContext", "COUNTERS", "SteeringMethod", "TemperatureMethod",
           "AdapterMethod"]
