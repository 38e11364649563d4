"""Messages point the right way (issue 13, item 9): the fix they name exists and applies."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from reprolab.hub import HubUnavailableError
from reprolab.registry import ROOT


def test_the_generate_runners_tokenizer_error_names_its_own_keys(hub_offline):
    """GEAR at paper scale: the tokenizer is the pretrained model's; the data group's keys do not apply."""
    from runners.generate.model import build_tokenizer

    with pytest.raises(HubUnavailableError) as e:
        build_tokenizer("no-such/llama")
    msg = str(e.value)
    assert "data.tokenizer" not in msg
    assert "runner.tokenizer" in msg and "model.hf_id" in msg and "experiment=gear_recall_2bit" in msg


def test_a_missing_trained_model_says_which_experiment_trains_it(tmp_path):
    from runners.generate.model import checkpoint_file

    folder = tmp_path / "logs" / "gear_recall_train" / "default"  # gear_recall_*'s runner.checkpoint
    with pytest.raises(FileNotFoundError, match=r"run `python run.py experiment=gear_recall_train` first") as e:
        checkpoint_file(str(folder))
    assert str(folder / "checkpoints" / "last.ckpt") in str(e.value)
    with pytest.raises(FileNotFoundError) as e:  # a folder no experiment writes: no invented command
        checkpoint_file(str(tmp_path / "logs" / "mine" / "default"))
    assert "experiment=" not in str(e.value)


@pytest.mark.parametrize("launcher, sbatch, refused", [
    ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", False, True),
    ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", True, False),
    ("hydra._internal.core_plugins.basic_launcher.BasicLauncher", False, False),
])
def test_a_slurm_sweep_off_a_cluster_stops_before_submitting(tmp_path, monkeypatch, launcher, sbatch, refused):
    from reprolab.app import LauncherCheck

    if sbatch:
        fake = tmp_path / "sbatch"
        fake.write_text("#!/bin/sh\n")
        fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    config = OmegaConf.create({"hydra": {"launcher": {"_target_": launcher}}})
    if refused:
        with pytest.raises(SystemExit, match="error: launcher=slurm .*sbatch.* not on this machine's PATH"):
            LauncherCheck().on_multirun_start(config)
    else:
        LauncherCheck().on_multirun_start(config)


def test_slurm_sweep_without_sbatch_prints_one_line_and_submits_nothing(tmp_path):
    env = dict(os.environ, PATH=os.path.dirname(sys.executable), HYDRA_FULL_ERROR="0")
    out = subprocess.run([sys.executable, "run.py", "-m", "launcher=slurm", f"paths.log_dir={tmp_path}",
                          "trainer.max_steps=1"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "launcher=slurm submits the sweep with SLURM's sbatch" in out.stderr
    assert not any(tmp_path.rglob("run.json")) and not any(tmp_path.rglob(".submitit"))
