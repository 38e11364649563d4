"""The distributed backend (one process per worker over gloo) against the simulated one, and failures."""
from __future__ import annotations

import os
import time

import pytest
import torch

from reprolab.config import validate
from runners.numeric import WorkerFailed, solve
from runners.numeric.checkpoint import load
from tests.conftest import compose_job

TOY4 = ["experiment=pd_sliding_toy", "problem.workers=4", "runner.log_every=5", "logger=csv"]


def run_backend(tmp_path, backend, extra=()):
    from reprolab.app import main

    cfg, job = compose_job(TOY4 + [f"runner.backend={backend}", *extra], tmp_path / backend)
    results = main(cfg, job)
    return results, load(job.output_dir / "checkpoints" / "last.ckpt")["solver"]


@pytest.mark.parametrize("method,steps", [("pd_sliding", 20), ("defw", 30)])
def test_gloo_backend_gives_the_simulated_iterates_bit_for_bit(tmp_path, method, steps):
    """Spec §6.8: 4 workers, 20 outer iterations, float64, fixed neighbour order: identical iterates."""
    extra = [f"method={method}", f"runner.max_steps={steps}"]
    sim, sim_state = run_backend(tmp_path, "simulated", extra)
    dist, dist_state = run_backend(tmp_path, "distributed", extra)
    assert sim_state["worker"].keys() == dist_state["worker"].keys()
    for key, value in sim_state["worker"].items():
        assert torch.equal(value, dist_state["worker"][key]), key
    for key in ("table/grad_evals", "table/comm_rounds", "table/lo_calls", "table/samples"):
        assert sim[key] == dist[key], key
    assert dist["table/gap"] == pytest.approx(sim["table/gap"], rel=1e-12)


def _fail_on_worker_two(mode: str):
    """A problem whose gradient oracle on worker 2 dies (os._exit) or hangs at its third call."""
    from methods.pd_sliding import L1LeastSquares

    class Faulty(L1LeastSquares):
        def build(self, ctx):
            problem = super().build(ctx)
            calls, real = [0], problem.grad

            def grad(x):
                calls[0] += 1
                if problem.workers == [2] and calls[0] == 3:
                    if mode == "die":
                        os._exit(3)
                    time.sleep(3600)
                return real(x)

            problem.grad = grad
            return problem

    return Faulty


@pytest.mark.parametrize("mode,cause", [("die", "exit code 3"), ("hang", "died or hung")])
def test_a_dead_or_hung_worker_stops_the_others_with_a_clear_error(tmp_path, mode, cause):
    from reprolab.config import typed
    from reprolab.rundir import RunDir

    cfg, job = compose_job(TOY4 + ["runner.backend=distributed", "runner.timeout_s=3", "runner.max_steps=10"],
                           tmp_path)
    objs = validate(cfg)
    spec = typed(cfg.problem)
    faulty = _fail_on_worker_two(mode)(**{f: getattr(spec, f) for f in spec.__dataclass_fields__})
    run_dir = RunDir(job.output_dir)
    run_dir.start(cfg, [], {}, "start")
    start = time.monotonic()
    with pytest.raises(WorkerFailed, match=f"worker \\d of 4 failed.*{cause}"):
        solve(cfg, run_dir, objs["runner"], objs["roles"].solver, faulty)
    assert time.monotonic() - start < 60
