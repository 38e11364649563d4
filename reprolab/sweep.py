"""Hyperparameter search with Hydra's Optuna sweeper (hydra-optuna-sweeper; conf/hydra/sweeper/optuna_seeded.yaml).

The sweeper optimizes what the task function returns. ``optimize=<results key>`` (e.g.
``optimize=table/best_val_loss``) makes run.py return that number of the job's results (also when
a finished run is only reported); null, the default, returns nothing, as grid sweeps need.
"""
from __future__ import annotations

import logging

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from reprolab.checks import ConfigError

log = logging.getLogger("reprolab")


def objective(cfg: DictConfig, results: dict) -> float | None:
    """The number a search optimizes: ``results[cfg.optimize]``, or None without ``optimize``."""
    key = cfg.get("optimize")
    if key is None:
        return None
    if key not in results:
        raise ConfigError(f"optimize={key} names no result of this run; its results are {sorted(results)}. "
                          f"Set optimize= to one of them.")
    return float(results[key])


def uses_optuna(config: DictConfig) -> bool:
    return "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_", default="") or "")


def check_sweeper(config: DictConfig) -> None:
    """An Optuna search needs a number from every job: refuse one without ``optimize`` before any job runs;
    warn where a rerun would not find the study's folders again (a sampler without a seed)."""
    if not uses_optuna(config):
        return
    sampler = OmegaConf.select(config, "hydra.sweeper.sampler", default=None)
    if sampler is not None and "seed" in sampler and sampler.seed is None and not config.hydra.sweeper.get("storage"):
        log.warning("this Optuna sampler has no seed: rerunning this command will propose other points and train "
                    "them anew. hydra/sweeper=optuna_seeded (or hydra.sweeper.sampler.seed=0) replays the same study "
                    "from its finished run folders.")
    if config.get("optimize") is None:
        raise ConfigError(
            "hydra/sweeper=optuna optimizes the number each job returns, and optimize is null, so the jobs return "
            "none. Name the result to optimize, e.g. optimize=table/best_val_loss (a run's results.json lists its "
            "keys; hydra.sweeper.direction=maximize for a score).")


class SweeperCheck(Callback):
    """Hydra callback (conf/hydra/default.yaml): `check_sweeper` when a multirun starts."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            check_sweeper(config)
        except ConfigError as e:  # Hydra turns a callback's exception into a warning and goes on: exit here
            raise SystemExit(f"error: {e}") from None
        if uses_optuna(config):
            # The Optuna sweeper reads hydra.sweep.dir (${paths.log_dir}/${name}) when it is set up, before any job
            # has set HydraConfig, and the default name is ${hydra:runtime.choices.experiment}: set it now.
            from hydra.core.hydra_config import HydraConfig

            HydraConfig.instance().set_config(config)
