"""TempNet through the role slots (issue 19 "Must show"): ``temperature=tempnet kv_cache=gear`` trains and
generates (the lm runner's evaluation after training, then the generate runner from the checkpoint); a
frozen-LM run trains TempNet alone; a contrastive run with ``temperature=tempnet_clip``; the slot checks."""
from __future__ import annotations

import math

import pytest

from reprolab.checkpoint import load
from tests.conftest import TINY

SMALL = ["model.hidden_size=32", "model.intermediate_size=64", "logger=csv", "callbacks=none"]
TEMPNET = ["temperature=tempnet", "temperature.hidden=8", "temperature.tau_min=0.05", "temperature.tau_max=5"]
RECALL = ["runner.task.num_examples=4", "runner.task.order=forward"]


def test_tempnet_with_gear_trains_and_generates(run_job, tmp_path):
    results, job = run_job(["experiment=gear_recall_train", *TINY, *SMALL, "optimizer=adamw", "data.batch_size=4",
                            "objective=dro_lm", "objective.rho=2", *TEMPNET, "kv_cache=gear", "kv_cache.buffer=16",
                            "kv_cache.group=16", "+runner/task@runner.eval=recall", "runner.eval.num_examples=4",
                            "runner.eval.order=forward"])
    assert results["train/steps"] == 4 and math.isfinite(results["table/val_loss"])
    assert results["eval/examples"] == 4 and results["eval/kv_fraction"] < 1
    assert 0.05 <= results["table/val_tau"] <= 5
    state = load(job.output_dir / "checkpoints" / "last.ckpt")["state_dict"]
    assert any(k.startswith("model.temperature.") for k in state)
    # the generate runner loads the trained TempNet with the model and decodes through GEAR
    out, _ = run_job(["experiment=gear_recall_2bit", f"runner.checkpoint='{job.output_dir}'", "model.hidden_size=32",
                      "model.intermediate_size=64", "logger=csv", "kv_cache=gear", "kv_cache.bits=2", "kv_cache.buffer=16",
                      "kv_cache.group=16", *TEMPNET, *RECALL, "runner.rescale.alpha=1.0"], log_dir=tmp_path / "gen")
    assert out["eval/examples"] == 4 and 0 <= out["table/accuracy"] <= 1 and out["table/kv_fraction"] < 1


def test_frozen_lm_run_trains_tempnet_alone(run_job):
    results, job = run_job([*TINY, *SMALL, "~experiment", "data=markov_v32", "optimizer=adamw", "objective=dro_lm",
                            "objective.rho=2", *TEMPNET, "temperature.frozen_model=true"])
    state = load(job.output_dir / "checkpoints" / "last.ckpt")["state_dict"]
    n_tempnet = sum(v.numel() for k, v in state.items() if k.startswith("model.temperature.") and v.is_floating_point())
    assert results["table/trainable_params"] == n_tempnet < results["table/params"]


def test_contrastive_run_with_tempnet_clip(run_job):
    results, _ = run_job([*TINY, "logger=csv", "callbacks=none", "~experiment", "data=gmm_pairs", "data.n_train=256",
                          "data.val_pairs=64", "data.batch_size=32", "model=clip_mlp", "optimizer=adamw",
                          "objective=isogclr", "temperature=tempnet_clip", "temperature.prototypes=16"])
    assert 0 <= results["table/val_r1"] <= 1 and 0.005 <= results["table/val_tau_image"] <= 0.05


def test_dro_without_a_temperature_fails_before_training(compose):
    from reprolab.checks import ConfigError
    from reprolab.config import validate

    cfg, _ = compose(["~experiment", "objective=dro_lm", "optimizer=adamw"])
    with pytest.raises(ConfigError, match="temperature slot is empty"):
        validate(cfg)
