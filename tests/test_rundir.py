"""Run folders: resume policy, atomic writes, provenance."""
from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from reprolab.rundir import RunDir, RunExistsError, atomic_write


def make(tmp_path, status=None, ckpt=False, results=False):
    run = RunDir(tmp_path / "r")
    if status:
        run.start(OmegaConf.create({"seed": 1, "name": "x"}), ["a=1"], {"method": "adamw"}, "start")
        run.meta["status"] = status
        run.save_meta()
    if ckpt:
        run.checkpoint_dir.mkdir(parents=True)
        run.last_ckpt.write_bytes(b"ckpt")
    if results:
        run.results_file.write_text("{}")
    return RunDir(run.path)


@pytest.mark.parametrize("status, ckpt, results, policy, action", [
    (None, False, False, "auto", "start"),
    (None, False, False, "never", "start"),
    ("running", True, False, "auto", "resume"),     # killed after a checkpoint
    ("failed", True, False, "must", "resume"),
    ("failed", False, False, "auto", "start"),      # died before its first checkpoint
    ("complete", True, True, "auto", "report"),
])
def test_resume_policy(tmp_path, status, ckpt, results, policy, action):
    assert make(tmp_path, status, ckpt, results).check_policy(policy) == action


@pytest.mark.parametrize("status, ckpt, results, policy", [
    ("complete", True, True, "never"), ("running", True, False, "never"), (None, False, False, "must"),
    ("complete", True, True, "must"),
])
def test_resume_policy_refusals(tmp_path, status, ckpt, results, policy):
    with pytest.raises(RunExistsError):
        make(tmp_path, status, ckpt, results).check_policy(policy)


def test_bad_policy_names_the_options(tmp_path):
    with pytest.raises(ValueError, match="auto"):
        make(tmp_path).check_policy("sometimes")


def test_restart_keeps_the_previous_attempts_metrics(tmp_path):
    run = make(tmp_path, "failed")
    (run.path / "metrics.csv").write_text("step,loss\n0,1\n")
    first_id = run.wandb_id
    run.start(OmegaConf.create({"seed": 1}), [], {}, "start")
    assert (run.path / "metrics.attempt1.csv").read_text() == "step,loss\n0,1\n"
    assert run.wandb_id != first_id and len(run.meta["history"]) == 2


def test_provenance_is_recorded(tmp_path):
    run = make(tmp_path, "running")
    meta = json.loads((run.path / "run.json").read_text())
    assert {"commit", "dirty", "versions", "machine", "seed", "overrides", "choices", "wandb_id"} <= set(meta)
    assert (run.path / "config.yaml").read_text().strip() == "seed: 1\nname: x"


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    atomic_write(path, "old")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_reprolab_commit_names_the_commit_of_a_shipped_tree(monkeypatch):
    """A copy of the tree on a GPU machine may have no .git, or a stale one: REPROLAB_COMMIT wins."""
    import subprocess

    from reprolab import rundir

    monkeypatch.setenv("REPROLAB_COMMIT", "abc123")
    assert rundir.git_state() == {"commit": "abc123", "dirty": None}  # whatever git says here

    def no_git(*args, **kwargs):
        raise OSError("git: not a repository")

    monkeypatch.setattr(subprocess, "run", no_git)
    monkeypatch.delenv("REPROLAB_COMMIT")
    assert rundir.git_state() == {"commit": None, "dirty": None}
