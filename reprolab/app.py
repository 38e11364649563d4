"""One job: validate the config, settle the run folder, call the runner, record the results.

`run.py` calls `main` from inside Hydra; tests call it with a composed config and a `JobInfo`.
"""
from __future__ import annotations

import errno
import logging
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hydra.experimental.callback import Callback
from hydra.utils import get_method
from omegaconf import DictConfig, OmegaConf

from reprolab.checks import ConfigError, UserError
from reprolab.config import validate
from reprolab.rundir import RunDir

log = logging.getLogger("reprolab")


@dataclass
class JobInfo:
    """What Hydra knows about the job that the config does not say."""

    output_dir: Path
    overrides: list[str] = field(default_factory=list)
    choices: dict = field(default_factory=dict)
    multirun: bool = False
    launcher: str = "basic"
    key: str = ""  # the overrides that name the run folder (Hydra's override_dirname)
    sweep_params: dict = field(default_factory=dict)  # the sweep the job's own config defines (hydra.sweeper.params)

    @classmethod
    def from_hydra(cls) -> "JobInfo":
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hc = HydraConfig.get()
        choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra/") and v is not None}
        return cls(
            output_dir=Path(hc.runtime.output_dir),
            overrides=list(hc.overrides.task),
            choices=choices,
            multirun=hc.mode == RunMode.MULTIRUN,
            launcher=hc.runtime.choices.get("hydra/launcher") or "basic",
            key=hc.job.override_dirname,
            sweep_params=dict(hc.sweeper.get("params") or {}),
        )


def check_launch(cfg: DictConfig, job: JobInfo) -> None:
    """Refuse combinations that would silently do the wrong thing, or fail deep inside Lightning."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if job.multirun and job.launcher == "basic" and strategy.startswith("ddp") and "spawn" not in strategy:
        raise ConfigError(
            f"hardware with strategy={strategy} cannot run inside a local multirun (-m): Lightning re-launches the "
            "script in every rank, and each rank would re-run the whole sweep. Use hardware=ddp_spawn, or hand the "
            "sweep to SLURM with launcher=slurm (one job per sweep point, each with its own ranks)."
        )
    import torch

    if torch.cuda.is_available():
        return
    if cfg.get("trainer", {}).get("accelerator") == "gpu":
        what, fix = f"hardware={job.choices.get('hardware', 'gpu')}", "hardware=cpu"
    elif cfg.runner.get("accelerator") == "gpu":  # the numeric runner (Fabric)
        what, fix = "runner.accelerator=gpu", "runner.accelerator=cpu"
    elif str(cfg.runner.get("device", "")).startswith("cuda"):  # the generate runner
        what, fix = f"runner.device={cfg.runner.device}", "runner.device=cpu"
    else:
        return
    raise ConfigError(
        f"{what} runs on a GPU, and torch {torch.__version__} sees none on this machine. Run it on a GPU machine, "
        f"or override {fix} (slow at paper scale: the CPU analogs the README lists, e.g. experiment=cosmos_tiny, "
        "are sized for a laptop)."
    )


def check_launcher(config: DictConfig) -> None:
    """A sweep handed to SLURM (``-m launcher=slurm``) needs SLURM's ``sbatch`` on this machine's PATH;
    without it submitit fails with a traceback after Hydra has set the sweep up."""
    import shutil

    target = str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")
    if "submitit" in target and "Slurm" in target and shutil.which("sbatch") is None:
        raise ConfigError(
            "launcher=slurm submits the sweep with SLURM's sbatch, which is not on this machine's PATH (not a "
            "SLURM login node?). Run the sweep from the cluster's login node, or here without launcher=slurm "
            "(launcher=joblib runs its jobs in parallel processes on this machine)."
        )


class LauncherCheck(Callback):
    """Hydra callback (conf/hydra/default.yaml): refuse a sweep its launcher cannot run here before any
    job is submitted. `check_launch` runs inside each job, i.e. already on the cluster."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            check_launcher(config)
        except ConfigError as e:  # Hydra turns a callback's exception into a warning and goes on: exit here
            raise SystemExit(f"error: {e}") from None


def warn_unswept(job: JobInfo) -> None:
    """In a sweep over several experiments, Hydra builds the job list before it loads any of them, so
    the sweeps the experiments define themselves (``hydra.sweeper.params``) do not run: say so."""
    swept = {o.lstrip("+~").split("=", 1)[0] for o in job.overrides}
    missing = {k: v for k, v in job.sweep_params.items() if k not in swept}
    if job.multirun and missing:
        name = job.choices.get("experiment", "this experiment")
        log.warning(f"experiment {name} defines a sweep over {missing} that this multirun does not run (Hydra "
                    f"expands a sweep before it loads the experiments it sweeps over); to run it, sweep "
                    f"`python run.py -m experiment={name}` on its own or name the values on the command line.")


@contextmanager
def cpu_threads(n: int | None):
    """torch's intra-op threads for the job (None: leave torch's default); restored afterwards, so
    jobs of an in-process sweep do not inherit each other's setting."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _rank_zero() -> bool:
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def main(cfg: DictConfig, job: JobInfo) -> dict:
    from reprolab import tracking

    objs = validate(cfg, job.overrides)
    check_launch(cfg, job)
    warn_unswept(job)
    run = RunDir(job.output_dir)
    action = run.check_policy(cfg.resume, cfg, job.choices)  # a folder found again must hold this config
    if action == "report":
        log.info(f"{run.path} is already complete (resume={cfg.resume}); its results:")
        results = run.results()
        print_results(results, run.path)
        return results
    if _rank_zero():
        run.start(cfg, job.overrides, job.choices, action, key=job.key)
        run.meta["roles"] = objs["roles"].names()  # every filled slot, runner defaults included
        run.save_meta()
        if action == "resume":
            log.info(f"resuming {run.path} from {run.last_ckpt}")
    tracking.quiet_lightning()  # before any runner imports Lightning's extra console handler
    try:
        with cpu_threads(cfg.get("cpu_threads")):
            results = get_method(cfg.runner._target_)(cfg, run, objs)
    except BaseException as e:
        if _rank_zero():
            _record_failure(run, e)
        tracking.finish(failed=True)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT) and not isinstance(e, UserError):
            raise DiskFullError(disk_full_message(run, e)) from None
        raise
    if _rank_zero():
        run.finish(results)
        print_results(results, run.path)
    tracking.finish(results)
    return results


class DiskFullError(UserError, OSError):
    """The run folder's disk filled up; the message names the folder, the free space and the fix."""


def disk_full_message(run: RunDir, error: OSError) -> str:
    from reprolab.checkpoint import size

    free = shutil.disk_usage(run.path if run.path.exists() else run.path.parent).free
    where = f" ({error.filename})" if error.filename else ""
    return (f"no space left on device while writing the run folder {run.path}{where}: {size(free)} available. "
            f"Free space there (or set paths.log_dir=<a bigger disk>) and rerun the same command: it resumes from "
            f"{run.last_ckpt.name} if one was written.")


def _record_failure(run: RunDir, error: BaseException) -> None:
    """run.json says failed; if even that cannot be written (a full disk), say so without hiding the cause."""
    try:
        run.fail(error)
    except OSError as e:
        log.error(f"could not record the failure in {run.path / 'run.json'} ({e}); it still says "
                  f"{run.meta.get('status', 'running')!r}, and the next start treats the run as unfinished")


def print_results(results: dict, path: Path) -> None:
    lines = [f"results ({path}):"]
    for k, v in results.items():
        lines.append(f"  {k:28s} {v:.6g}" if isinstance(v, float) else f"  {k:28s} {v}")
    print("\n".join(lines), flush=True)
