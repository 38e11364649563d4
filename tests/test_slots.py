"""Role slots: presets, defaults written into the config, one validation, clear errors (reprolab/slots.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from reprolab.checks import ConfigError
from reprolab.config import validate
from reprolab.registry import ROOT


def test_method_preset_is_the_slot(compose):
    """method=cosmos fills the optimizer slot with exactly what optimizer=cosmos gives, overrides included."""
    by_preset = validate(compose(["~experiment", "method=cosmos", "method.lr=3e-3"])[0])["roles"]
    by_slot = validate(compose(["~experiment", "optimizer=cosmos", "optimizer.lr=3e-3"])[0])["roles"]
    assert by_preset.optimizer == by_slot.optimizer and by_preset.optimizer.lr == 3e-3
    assert by_preset.names() == by_slot.names() == {"optimizer": "cosmos", "objective": "next_token"}
    kv = validate(compose(["~experiment", "runner=generate", "method=gear"])[0])["roles"]
    assert kv.names() == {"kv_cache": "gear"}


def test_an_empty_slot_takes_the_runner_default_and_the_config_shows_it(compose):
    cfg, _ = compose(["~experiment"])
    assert cfg.get("optimizer") is None
    roles = validate(cfg)["roles"]
    assert roles.names() == {"optimizer": "adamw", "objective": "next_token"}
    assert cfg.optimizer.lr == roles.optimizer.lr  # written into cfg: config.yaml and W&B show every value


def test_two_choices_for_one_slot_fail_naming_both(compose):
    overrides = ["~experiment", "method=cosmos", "optimizer=adamw"]
    cfg, _ = compose(overrides)
    with pytest.raises(ConfigError, match="two choices fill the optimizer slot: optimizer=adamw and method=cosmos"):
        validate(cfg, overrides)


@pytest.mark.parametrize("typed, wins", [("optimizer=soap", "soap"), ("method=soap", "soap")])
def test_the_command_line_replaces_the_experiments_choice(compose, typed, wins):
    """quickstart sets method=cosmos; `optimizer=soap` (or method=soap) typed on top replaces it."""
    cfg, _ = compose([typed])
    roles = validate(cfg, [typed])["roles"]
    assert roles.names()["optimizer"] == wins
    assert (cfg.get("method") is None) == typed.startswith("optimizer")  # the replaced preset is not left in the config


@pytest.mark.parametrize("overrides, message", [
    (["method=nag_mf"], "method=nag_mf fills the solver slot, and runner=lm has no solver slot"),
    (["runner=generate", "kv_cache=fp16", "optimizer=sgd"], "optimizer=sgd: runner=generate has no optimizer slot"),
    (["runner=generate"], "runner=generate needs a kv_cache: pick one with kv_cache=<name> (one of fp16, gear"),
    (["optimizer=cosmos", "optimizer.lr=-1"], "optimizer.lr=-1"),
    (["method=cosmos", "method.lr=-1"], "method.lr=-1"),
])
def test_unfillable_combinations_fail_naming_the_slot(compose, overrides, message):
    cfg, _ = compose(["~experiment", *overrides])
    with pytest.raises(ConfigError) as e:
        validate(cfg)
    assert message in str(e.value)


def test_a_plugin_in_another_roles_slot_is_named_before_composing():
    out = subprocess.run([sys.executable, "run.py", "optimizer=gear"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1
    assert "Write kv_cache=gear (or method=gear)." in out.stderr
    assert "optimizer=gear: gear fills the kv_cache slot, not the optimizer one (the optimizer plugins: adam_mini, adamw" in out.stderr


def test_run_json_records_every_filled_slot(run_job):
    import json

    from tests.conftest import TINY

    _, job = run_job(["~experiment", *TINY, "logger=csv", "callbacks=none", "data=markov_v32", "model.hidden_size=32"])
    meta = json.loads((job.output_dir / "run.json").read_text())
    assert meta["roles"] == {"optimizer": "adamw", "objective": "next_token"}  # the runner's defaults, named
