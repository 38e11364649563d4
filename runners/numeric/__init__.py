"""The `numeric` runner: pure optimisation problems (no neural-network training), driven by Fabric.

Slots: ``solver`` (required; `SolverMethod`: nag_mf, pd_sliding, defw, ...; ``method=nag_mf`` fills it), and
``problem`` (config group) is a `ProblemSpec` (matrix_factorization, linear_net, l1_least_squares,
libsvm_logistic). The runner owns everything around the solve: processes (Lightning Fabric
launches one per worker for ``runner.backend=distributed``, gloo, with a timeout on every
collective), seeding, metrics.csv + W&B, checkpoints and resume, wall time, and the final
``table/*`` numbers. It never names a method or a problem.
"""
from __future__ import annotations

import logging
import time
from datetime import timedelta

log = logging.getLogger(__name__)


class WorkerFailed(RuntimeError):
    """A worker process of the distributed backend died, hung or raised; the others were stopped."""


def _problem_spec(objs: dict):
    from reprolab.checks import ConfigError
    from reprolab.registry import options
    from reprolab.roles import ProblemSpec

    spec = objs.get("problem")  # typed and checked by `validate`
    if spec is None:
        raise ConfigError(f"runner=numeric needs a problem: add +problem=<name> (one of {options('problem')}), or "
                          "use an experiment that picks one (experiment=nag_mf_kappa_sweep, pd_sliding_toy, ...).")
    if not isinstance(spec, ProblemSpec):
        raise ConfigError(f"problem={type(spec).__name__} is not a ProblemSpec; pick one of {options('problem')}.")
    return spec


def _fabric(runner, processes: int):
    from lightning.fabric import Fabric

    if processes == 1:
        return Fabric(accelerator=runner.accelerator, devices=1)
    from lightning.fabric.strategies import DDPStrategy

    strategy = DDPStrategy(start_method=runner.start_method, process_group_backend="gloo",
                           timeout=timedelta(seconds=runner.timeout_s))
    return Fabric(accelerator="cpu", devices=processes, strategy=strategy)


def run(cfg, run_dir, objs: dict) -> dict:
    """``objs``: the validated config (`reprolab.config.validate`), the solver in ``objs["roles"]``."""
    return solve(cfg, run_dir, objs["runner"], objs["roles"].solver, _problem_spec(objs))


def solve(cfg, run_dir, runner, method, spec) -> dict:
    """Prepare the problem once, then run `drive` in one process or one per worker (Fabric)."""
    from torch.multiprocessing import ProcessExitedException, ProcessRaisedException

    processes = spec.processes() if runner.backend == "distributed" else 1
    spec.prepare(_context(cfg, runner, rank=0, world_size=1, device="cpu"))
    fabric = _fabric(runner, processes)
    try:
        return fabric.launch(drive, cfg, run_dir, runner, method, spec, processes > 1)
    except (ProcessRaisedException, ProcessExitedException) as e:
        raise WorkerFailed(f"runner.backend=distributed: {_describe(e, processes)}. The other workers were stopped; "
                           f"see {run_dir.path / 'run.log'}.") from None


def _describe(e, processes: int) -> str:
    text = str(e).strip()
    last = [ln for ln in text.splitlines() if ln.strip()][-1] if text else type(e).__name__
    return f"worker {getattr(e, 'error_index', '?')} of {processes} failed: {last}"


def _context(cfg, runner, rank: int, world_size: int, device, all_reduce=None):
    from pathlib import Path

    import torch

    from reprolab.roles import SolveContext

    return SolveContext(device=torch.device(device), dtype=getattr(torch, runner.dtype), seed=int(cfg.seed),
                        cache_dir=Path(cfg.paths.log_dir) / "cache", rank=rank, world_size=world_size,
                        timeout_s=runner.timeout_s, all_reduce=all_reduce)


def drive(fabric, cfg, run_dir, runner, method, spec, spawned: bool) -> dict:
    """The solve in one process (every process of the distributed backend runs this)."""
    import torch

    from reprolab import tracking
    from reprolab.roles import COUNTERS
    from runners.numeric import checkpoint
    from runners.numeric.metrics_log import MetricsLog

    if spawned and cfg.get("cpu_threads"):  # the launcher's process applies cpu_threads itself (reprolab.app)
        torch.set_num_threads(int(cfg.cpu_threads))
    fabric.seed_everything(cfg.seed, verbose=False)
    rank0 = fabric.global_rank == 0
    ctx = _context(cfg, runner, fabric.global_rank, fabric.world_size, fabric.device,
                   all_reduce=lambda t: fabric.all_reduce(t, reduce_op="sum"))
    solver = method.build_solver(spec.build(ctx), ctx)
    rows = slice(None) if fabric.world_size == 1 else slice(fabric.global_rank, fabric.global_rank + 1)

    wall, recorded, resume_step = 0.0, {}, None
    if run_dir.resuming:
        saved = checkpoint.load(run_dir.last_ckpt)
        solver.load_state_dict(checkpoint.slice_state(saved["solver"], rows))
        wall, recorded, resume_step = saved["wall_s"], saved["recorded"], solver.step
        if rank0:
            log.info(f"resumed at step {solver.step} from {run_dir.last_ckpt}")
    metrics_log = MetricsLog(cfg, run_dir, resume_step) if rank0 else None
    record_at = sorted(set(runner.record_at))
    start = time.perf_counter()

    def observe(write: bool = True) -> dict:
        m = solver.metrics()
        missing = [k for k in COUNTERS if k not in m]
        if missing:
            raise TypeError(f"{type(solver).__name__}.metrics() lacks the counters {missing} (see reprolab.roles.COUNTERS)")
        m = {f"train/{k}": v for k, v in m.items()}
        m["train/wall_s"] = wall
        if rank0 and write:
            metrics_log.log(solver.step, m)
        if solver.step in record_at:
            recorded.update({f"table/{k.split('/', 1)[1]}@{solver.step}": v for k, v in m.items()})
        return m

    def save() -> None:
        state = checkpoint.gather_state(solver.state_dict(), fabric)
        if rank0:
            checkpoint.save(run_dir.last_ckpt, {"solver": state, "wall_s": wall, "recorded": recorded})
        if fabric.world_size > 1:
            fabric.barrier()

    def over_budget(m) -> bool:
        return m is not None and any(m[f"train/{k}"] >= v for k, v in runner.budget.limits().items())

    last, last_step = (observe(), 0) if resume_step is None else (None, None)
    while solver.step < runner.max_steps and not solver.done and not over_budget(last):
        stops = [runner.max_steps, (solver.step // runner.log_every + 1) * runner.log_every]
        stops += [s for s in record_at if s > solver.step][:1]
        if runner.checkpoint_every:
            stops.append((solver.step // runner.checkpoint_every + 1) * runner.checkpoint_every)
        t0 = time.perf_counter()
        solver.advance(min(stops) - solver.step)
        wall += time.perf_counter() - t0
        if solver.done or solver.step % runner.log_every == 0 or solver.step in record_at or solver.step >= runner.max_steps:
            last, last_step = observe(), solver.step
        if runner.checkpoint_every and solver.step % runner.checkpoint_every == 0:
            save()
    if last_step != solver.step:  # resumed from a checkpoint of a finished solve: already logged
        last = observe(write=False)
    save()

    results = {f"table/{k.split('/', 1)[1]}": v for k, v in last.items()}
    results.update({f"table/{k}": v for k, v in solver.summary().items()})
    results.update(recorded)
    results["train/steps"] = solver.step
    results["time/job_s"] = time.perf_counter() - start
    if spawned and rank0:
        tracking.finish(results)  # the W&B run lives in this process, not in the launcher's
    return results
