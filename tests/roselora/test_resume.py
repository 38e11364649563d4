"""Crash and resume: the lm runner restores RoseLoRA's importance EMAs from its checkpoint (the adapter role's
``train_state_dict``), so the resumed run ends where the uninterrupted one does; the edit runner skips the edits
a previous attempt finished."""
from __future__ import annotations

import math

import pytest
import torch

from reprolab import checkpoint
from tests.conftest import TINY
from tests.test_faults import _crash_at

SIX = [*TINY, "model.hidden_size=32", "model.intermediate_size=64", "logger=csv", "callbacks=none", "~experiment",
       "data=markov_v32", "hardware=cpu", "trainer.max_steps=6", "optimizer=adamw", "adapter=roselora", "adapter.r=4",
       "adapter.t_init=1", "adapter.t_final=5", "adapter.dropout=0.0"]


def test_lm_resume_restores_the_importance_state(run_job, tmp_path, monkeypatch):
    straight, job = run_job(SIX, log_dir=tmp_path / "straight")
    want = checkpoint.load(job.output_dir / "checkpoints" / "adapter.pt")["state_dict"]
    _crash_at(monkeypatch, 5)  # last.ckpt at step 4 holds the EMAs of 4 updates
    with pytest.raises(RuntimeError, match="injected crash"):
        run_job(SIX)
    resumed, job = run_job(SIX)
    assert checkpoint.load(job.output_dir / "checkpoints" / "last.ckpt")["adapter"]["updates"] == 6
    got = checkpoint.load(job.output_dir / "checkpoints" / "adapter.pt")["state_dict"]
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    assert resumed["table/val_loss"] == straight["table/val_loss"]


def test_edit_runner_resumes_after_the_finished_edits(run_job, tmp_path, monkeypatch):
    import runners.edit as edit_runner

    args = ["runner=edit", "model=llama_tiny", "model.hidden_size=32", "model.intermediate_size=64", "logger=csv",
            "callbacks=none", "~experiment", "runner.num_steps=3", "runner.task.n_subjects=12",
            "runner.task.n_relations=3", "runner.task.n_objects=10", "runner.task.num_edits=3",
            "runner.task.num_locality=6", "adapter=lora"]
    straight, _ = run_job(args, log_dir=tmp_path / "straight")
    real, calls = edit_runner.edit, []

    def crash_on_third(*a, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("injected crash")
        return real(*a, **kw)

    monkeypatch.setattr(edit_runner, "edit", crash_on_third)
    with pytest.raises(RuntimeError, match="injected crash"):
        run_job(args)
    resumed, job = run_job(args)
    assert len(calls) == 4  # two edits before the crash, then only the third one
    assert resumed.keys() == straight.keys()
    assert all(math.isclose(resumed[k], straight[k], rel_tol=1e-6) for k in straight)
