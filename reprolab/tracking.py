"""Experiment tracking: CSV always, W&B offline unless ``WANDB_MODE=online``; never asks for a key.

Every job is its own W&B run: the id is kept in run.json (so a resumed run continues it), the group
is ``<paper>/<table>`` (the config's ``group``), the tags are the chosen method, model and data,
and `finish` closes the run at the end of the job, which keeps multirun jobs apart.
"""
from __future__ import annotations

import logging
import os

from omegaconf import DictConfig, OmegaConf

TAG_GROUPS = ("method", "model", "data", "runner")


def wandb_mode(cfg: DictConfig) -> str:
    mode = os.environ.get("WANDB_MODE") or cfg.logger.wandb.mode
    return "offline" if mode not in ("online", "offline", "disabled") else mode


def _prepare_env(cfg: DictConfig, run) -> None:
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")  # the job log already has the console
    os.environ["WANDB_MODE"] = wandb_mode(cfg)  # offline runs never prompt for a key
    os.environ.setdefault("WANDB_DIR", str(run.path))


def wandb_kwargs(cfg: DictConfig, run) -> dict:
    choices = run.meta.get("choices", {})
    return dict(
        project=cfg.logger.wandb.project,
        entity=cfg.logger.wandb.entity,
        group=cfg.group,
        name=f"{cfg.name}/{run.path.name}",
        tags=[f"{g}:{choices[g]}" for g in TAG_GROUPS if choices.get(g)]
        + [f"{role}:{name}" for role, name in run.meta.get("roles", {}).items() if choices.get(role) != name],
        id=run.wandb_id,
        resume="allow",
        dir=str(run.path),
        # the group choices and the filled role slots, which the config itself does not name: the W&B
        # dashboards group runs by them (`choices.method`, experiments/dashboard)
        config={**OmegaConf.to_container(cfg, resolve=True), "choices": dict(choices), "roles": run.meta.get("roles", {})},
    )


class _DropLitLoggerTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


def quiet_lightning() -> None:
    """One copy of each Lightning message, in the job's log format, and none of its advertising.

    `import lightning` gives the ``lightning`` logger a console handler of its own, so under Hydra
    (whose handlers sit on the root logger) every message was printed twice; `reprolab.app` calls
    this before any runner. Lightning's "try litlogger" tip and a torch-pytree deprecation warning
    inside Lightning are dropped."""
    import warnings

    import lightning  # noqa: F401  (adds the handler we remove)

    if logging.getLogger().hasHandlers():
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            for handler in list(logging.getLogger(name).handlers):
                logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).propagate = True
    tips = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLitLoggerTip) for f in tips.filters):
        tips.addFilter(_DropLitLoggerTip())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    # Validation sums are reduced over ranks by torchmetrics (runners/lm/module.py) before they are logged.
    warnings.filterwarnings("ignore", message=r"It is recommended to use `self.log\('val/")


JOB_LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job_logging format


def worker_logging(log_file) -> None:
    """Logging in a process that Hydra did not set up (the workers of ``strategy=ddp_spawn``): the
    job's format to the console and to ``log_file`` (run.log, appended), and Lightning quieted as in
    the job's own process. Does nothing to a process whose root logger already has handlers."""
    import sys

    root = logging.getLogger()
    if not root.handlers:
        formatter = logging.Formatter(JOB_LOG_FORMAT)
        for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(log_file)):
            handler.setFormatter(formatter)
            root.addHandler(handler)
        root.setLevel(logging.INFO)
    quiet_lightning()


def lightning_loggers(cfg: DictConfig, run, resume_step: int | None = None, pending_row: dict | None = None) -> list:
    """Loggers for a Lightning Trainer: metrics.csv in the run folder, and W&B if enabled.

    ``resume_step``: the global step of the checkpoint the run resumes from; the rows the interrupted
    attempt logged at or after it are dropped (the resumed run logs them again), every earlier row
    is kept, and ``pending_row`` (the row that checkpoint carries, logged just after it) is written
    back if the kill came before it reached the file."""
    from lightning.pytorch.loggers import WandbLogger

    from reprolab.csvlog import ResumableCSVLogger, trim_metrics

    quiet_lightning()
    if resume_step is not None:
        dropped = trim_metrics(run.path / "metrics.csv", resume_step, pending_row)
        if dropped:
            logging.getLogger(__name__).info(f"metrics.csv: {dropped} rows logged at steps >= {resume_step}, after the "
                                             "checkpoint this run resumes from, are dropped (they are logged again)")
    loggers = [ResumableCSVLogger(save_dir=str(run.path), name="", version="", flush_logs_every_n_steps=1)]
    if cfg.logger.wandb.enabled and wandb_mode(cfg) != "disabled":
        _prepare_env(cfg, run)
        kw = wandb_kwargs(cfg, run)
        wandb_logger = WandbLogger(save_dir=kw.pop("dir"), offline=wandb_mode(cfg) == "offline", log_model=False, **kw)
        # Lightning always passes `anonymous` (None here), which wandb >= 0.19 warns is deprecated.
        wandb_logger._wandb_init.pop("anonymous", None)
        loggers.append(wandb_logger)
    return loggers


def init_wandb(cfg: DictConfig, run):
    """A W&B run for runners that do not use a Lightning Trainer (or None if disabled)."""
    if not cfg.logger.wandb.enabled or wandb_mode(cfg) == "disabled":
        return None
    import wandb

    _prepare_env(cfg, run)
    return wandb.init(mode=wandb_mode(cfg), **wandb_kwargs(cfg, run))


def curves_read(results: dict, series: list[str]) -> dict[str, list[str]]:
    """``{series: [table keys]}``: the logged series that table cells are read from. A cell reads a curve when
    its key is ``table/best_<m>`` (the curve's best value) or ``table/<m>@<k>`` (its value at step k), and
    the run logged ``<split>/<m>`` (``table/best_val_loss`` reads ``val/loss``: the split may lead ``<m>``;
    ``table/gap@10`` reads ``train/gap``)."""
    read: dict[str, list[str]] = {}
    for key in results:
        name = key.removeprefix("table/")
        if not key.startswith("table/") or not (name.startswith("best_") or "@" in name):
            continue
        m = name.removeprefix("best_").split("@")[0]
        for s in series:
            split, _, rest = s.partition("/")
            if rest and (rest == m or f"{split}_{rest}" == m):
                read.setdefault(s, []).append(key)
    return read


def log_curves(results: dict, metrics_csv) -> None:
    """Log, to the open W&B run, a line plot of each series of ``metrics_csv`` that a table cell reads
    (`curves_read`), as ``curve/<series>``, titled with the cells read from it."""
    import csv
    from pathlib import Path

    import wandb

    if not Path(metrics_csv).exists():
        return
    with open(metrics_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "step" not in rows[0]:
        return
    for series, keys in curves_read(results, [c for c in rows[0] if c != "step"]).items():
        points = [[float(r["step"]), float(r[series])] for r in rows if r.get(series) not in (None, "")]
        if points:
            title = f"{series} ({', '.join(f'{k} = {results[k]:.4g}' for k in keys if isinstance(results[k], (int, float)))})"
            table = wandb.Table(data=points, columns=["step", series])
            wandb.run.log({f"curve/{series}": wandb.plot.line(table, "step", series, title=title)})


def finish(results: dict | None = None, failed: bool = False) -> None:
    """Write the final numbers to the W&B summary, plot the curves the table cells read (`log_curves`), and
    close the run (if one is open)."""
    import sys
    from pathlib import Path

    if "wandb" not in sys.modules:
        return
    import wandb

    if wandb.run is None:
        return
    if results:
        wandb.run.summary.update({k: v for k, v in results.items() if isinstance(v, (int, float, str))})
        if not failed:  # the run folder is W&B's root dir (wandb_kwargs)
            log_curves(results, Path(wandb.run.settings.root_dir) / "metrics.csv")
    wandb.finish(exit_code=1 if failed else 0)
