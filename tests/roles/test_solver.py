"""Every solver plugin on every registered problem it accepts (one process, all workers simulated):
it runs, reports every counter of
`reprolab.roles.COUNTERS`, and does not increase the objective gap over its first iterations."""
from __future__ import annotations

import math

import pytest
import torch

from reprolab.checks import ConfigError
from reprolab.registry import plugins
from reprolab.roles import COUNTERS, SolveContext
from tests.roles.conftest import every


@every("solver")
def test_solver_reports_the_counters_and_makes_progress(plugin, tmp_path):
    ctx = SolveContext(device=torch.device("cpu"), dtype=torch.float64, seed=0, cache_dir=tmp_path)
    accepted = 0
    for name, spec_cls in sorted(plugins("problem").items()):
        spec = spec_cls()
        if "libsvm" in name:  # reads ../shared/data; the synthetic problems cover the same solvers
            continue
        spec.prepare(ctx)
        try:
            solver = plugin.build_solver(spec.build(ctx), ctx)
        except ConfigError:
            continue  # a problem of another paper: the solver says which it accepts
        accepted += 1
        start = solver.metrics()
        solver.advance(20)
        end = solver.metrics()
        assert set(COUNTERS) <= set(end), (name, set(COUNTERS) - set(end))
        assert math.isfinite(end["gap"]) and end["gap"] <= start["gap"] * (1 + 1e-9) + 1e-12, name
    if not accepted:
        pytest.fail(f"{plugin.registered_name} accepts none of the registered synthetic problems")
