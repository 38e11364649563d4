"""A DFT run killed with SIGKILL mid-run resumes with the same log-u table: its final table and its
per-step losses equal those of an uninterrupted run (issue 16, "Must show")."""
from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from reprolab import checkpoint
from reprolab.rundir import RunDir
from tests.test_faults import _by_step, _finish, _rows, _run_py

ARGS = ["experiment=dft_toy", "trainer.max_steps=20", "trainer.val_check_interval=10", "runner.checkpoint_every=4",
        "trainer.log_every_n_steps=1", "trainer.deterministic=true", "trainer.enable_progress_bar=false",
        "data.batch_size=16", "logger=csv", "cpu_threads=1"]  # 16 steps an epoch: the kill lands in epoch 0 or 1


@pytest.mark.slow
def test_sigkill_mid_run_resumes_with_the_same_log_u_table(tmp_path):
    cache = [f"data.cache_dir={tmp_path / 'negatives'}"]
    _finish(_run_py(ARGS + cache, tmp_path / "a"))  # also makes the cached negatives both runs read
    killed = _run_py(ARGS + cache, tmp_path / "b", start_new_session=True)
    folder = tmp_path / "b" / "dft_toy"
    deadline = time.time() + 300
    while not list(folder.glob("*/checkpoints/last.prev.ckpt")):  # a second checkpoint: step 8
        assert killed.poll() is None and time.time() < deadline, killed.stdout.read()
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    run = RunDir(next(folder.iterdir()))
    saved = checkpoint.load(run.last_ckpt)
    assert run.resuming and 8 <= saved["global_step"] < 20
    visited = saved["objective"]["u_mask"].sum().item()
    assert visited >= 8 * 16 and saved["objective"]["log_u"].abs().sum() > 0  # the table was under way
    _finish(_run_py(ARGS + cache, tmp_path / "b"))
    straight = checkpoint.load(next((tmp_path / "a" / "dft_toy").glob("*/checkpoints/last.ckpt")))
    resumed = checkpoint.load(run.last_ckpt)
    for key in ("log_u", "u_mask"):
        torch.testing.assert_close(resumed["objective"][key], straight["objective"][key], rtol=0, atol=1e-6)
    a = _by_step(_rows(next((tmp_path / "a" / "dft_toy").iterdir())))
    b = _by_step(_rows(run.path))
    assert sorted(a) == sorted(b)
    for key, row in a.items():
        assert float(row.get("train/loss") or 0) == pytest.approx(float(b[key].get("train/loss") or 0), rel=1e-5)
