"""Hyperparameter search with hydra-optuna-sweeper (hydra/sweeper=optuna_seeded, reprolab/sweep.py):
each trial is a run folder named by its sampled values, a rerun of the study retrains nothing, a
failed trial fails alone, and the sweeper gets the result named by `optimize`."""
from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from reprolab.checks import ConfigError
from reprolab.registry import CONF_DIR, ROOT
from reprolab.sweep import check_sweeper, objective

from .conftest import TINY

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="pip install -e '.[sweep]'")

OPTIMIZERS = ["adamw", "adam_mini", "galore", "muon", "soap", "cosmos"]


def compose_all(overrides: list[str]):
    """The root config with its hydra node, as the sweeper and the callbacks see it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=overrides, return_hydra_config=True)


def test_objective_is_the_named_result_or_none():
    cfg = OmegaConf.create({"optimize": "table/best_val_loss"})
    assert objective(cfg, {"table/best_val_loss": 1.5, "table/val_loss": 1.7}) == 1.5
    assert objective(OmegaConf.create({"optimize": None}), {"table/best_val_loss": 1.5}) is None
    with pytest.raises(ConfigError, match=r"optimize=table/acc names no result.*'table/best_val_loss'"):
        objective(OmegaConf.create({"optimize": "table/acc"}), {"table/best_val_loss": 1.5})


def test_optuna_sweep_without_optimize_is_refused_and_the_preset_is_seeded():
    cfg = compose_all(["hydra/sweeper=optuna_seeded"])
    with pytest.raises(ConfigError, match="optimize is null.*optimize=table/best_val_loss"):
        check_sweeper(cfg)
    cfg = compose_all(["hydra/sweeper=optuna_seeded", "optimize=table/best_val_loss"])
    check_sweeper(cfg)
    sweeper = cfg.hydra.sweeper
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 0
    assert sweeper.max_failure_rate == 1.0
    check_sweeper(compose_all([]))  # the basic sweeper needs no optimize
    # another sampler can still be chosen (the seed lives in the TPE preset, not merged into every sampler)
    grid = compose_all(["hydra/sweeper=optuna_seeded", "hydra/sweeper/sampler=grid"]).hydra.sweeper.sampler
    assert grid._target_ == "optuna.samplers.GridSampler"


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_example_searches_the_grid_span_in_its_own_runs(opt):
    cfg = compose_all([f"experiment=cosmos_tiny_optuna/{opt}"])
    grid = cfg.lr_grid
    assert cfg.hydra.sweeper.params["method.lr"] == f"tag(log, interval({grid.lo2}, {grid.hi2}))"
    assert cfg.hydra.runtime.choices.method == opt and cfg.optimize == "table/best_val_loss"
    assert cfg.name == f"cosmos_optuna_{opt}"
    # the grid's tables (runs: cosmos_tiny_*) never pick up a trial; the Optuna table does
    for table, expected in (("tiny_loss", False), ("tiny_optuna", True)):
        globs = yaml.safe_load((ROOT / "experiments/cosmos" / f"{table}.yaml").read_text())["runs"]
        assert any(fnmatch.fnmatch(cfg.name, g) for g in globs) is expected, table


def sweep(log_dir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "run.py", "-m", "hydra/sweeper=optuna_seeded", "optimize=table/best_val_loss",
           "hydra.sweeper.n_jobs=1", f"paths.log_dir={log_dir}", "logger=csv", *TINY, *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def trials(log_dir: Path) -> dict[str, dict]:
    """Folder name -> run.json of each trial of the quickstart study."""
    return {p.parent.name: json.loads(p.read_text()) for p in (log_dir / "quickstart").glob("*/run.json")}


@pytest.mark.slow
def test_study_writes_one_folder_per_trial_and_a_rerun_retrains_nothing(tmp_path):
    args = ["hydra.sweeper.n_trials=3", "method.lr=tag(log, interval(1e-3, 1e-2))"]
    first = sweep(tmp_path, *args)
    assert first.returncode == 0, first.stderr[-3000:]
    runs = trials(tmp_path)
    assert len(runs) == 3
    losses = {}
    for folder, meta in runs.items():
        lr = yaml.safe_load((tmp_path / "quickstart" / folder / "config.yaml").read_text())["method"]["lr"]
        assert folder.startswith(f"method.lr={lr},"), folder  # named by the sampled value, the one trained
        assert meta["status"] == "complete" and [h["action"] for h in meta["history"]] == ["start"]
        losses[lr] = json.loads((tmp_path / "quickstart" / folder / "results.json").read_text())["table/best_val_loss"]
    best = yaml.safe_load((tmp_path / "quickstart" / "optimization_results.yaml").read_text())
    assert best["best_value"] == min(losses.values()) and best["best_params"]["method.lr"] == min(losses, key=losses.get)
    assert (tmp_path / "reports" / "quickstart").is_dir()  # the paper tables were rebuilt after the study

    again = sweep(tmp_path, *args)  # same seed: the same points, each reported from its finished folder
    assert again.returncode == 0, again.stderr[-3000:]
    rerun = trials(tmp_path)
    assert rerun.keys() == runs.keys()
    assert all([h["action"] for h in meta["history"]] == ["start"] for meta in rerun.values())
    assert yaml.safe_load((tmp_path / "quickstart" / "optimization_results.yaml").read_text()) == best


@pytest.mark.slow
def test_a_failed_trial_is_told_to_optuna_and_the_study_goes_on(tmp_path):
    # TPE with seed 0 proposes lr 1e12 first (a NaN loss at step 1 stops that run), then 0.003 (optuna<3's
    # RandomSampler draws for TPE's startup trials, numpy's legacy RandomState: fixed across machines)
    out = sweep(tmp_path, "hydra.sweeper.n_trials=2", "method.lr=choice(0.003,1e12)")
    assert out.returncode == 0, out.stderr[-3000:]
    runs = trials(tmp_path)
    status = {folder.split(",")[0]: meta["status"] for folder, meta in runs.items()}
    assert status == {"method.lr=0.003": "complete", f"method.lr={1e12}": "failed"}  # the folder holds repr(value)
    assert "Failed experiment: loss is nan" in out.stdout + out.stderr
    best = yaml.safe_load((tmp_path / "quickstart" / "optimization_results.yaml").read_text())
    assert best["best_params"] == {"method.lr": 0.003}
