"""What survives what (docs/faults.md): kills, a full disk, a corrupt checkpoint, spawned workers."""
from __future__ import annotations

import csv
import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from reprolab import checkpoint
from reprolab.checks import UserError
from reprolab.registry import ROOT
from reprolab.rundir import RunDir
from tests.conftest import TINY

LM = TINY + ["hardware=cpu", "data.batch_size=4", "data.val_sequences=8", "method=adamw"]
SIX = LM + ["trainer.max_steps=6"]  # checkpoints at steps 2 and 4, validation after steps 2, 4 and 6


def _rows(folder: Path) -> list[dict]:
    with (folder / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _by_step(rows: list[dict]) -> dict:
    """{(step, the row's filled columns): row}; fails if a step has two rows of a kind. Throughput is
    left out of the kind: it is logged from the 4th step of each attempt."""
    out = {}
    for r in rows:
        kind = tuple(sorted(k for k, v in r.items() if v not in ("", None) and k not in ("step", "epoch", "train/tokens_per_s")))
        key = (int(r["step"]), kind)
        assert key not in out, f"step {key} logged twice"
        out[key] = r
    return out


def _crash_at(monkeypatch, step: int):
    """Make training raise at global step ``step`` (as a crash would), once."""
    from runners.lm.module import LMModule

    original = LMModule.training_step

    def training_step(self, batch, batch_idx):
        if self.global_step == step:
            monkeypatch.setattr(LMModule, "training_step", original)
            raise RuntimeError(f"injected crash at step {step}")
        return original(self, batch, batch_idx)

    monkeypatch.setattr(LMModule, "training_step", training_step)


def test_resume_keeps_every_metrics_row_once(run_job, tmp_path, monkeypatch):
    straight, _ = run_job(SIX, log_dir=tmp_path / "straight")
    reference = _by_step(_rows(next((tmp_path / "straight" / "quickstart").iterdir())))

    _crash_at(monkeypatch, 5)  # last.ckpt is at step 4; steps 0-4 are logged
    with pytest.raises(RuntimeError, match="injected crash"):
        run_job(SIX)
    folder = next((tmp_path / "logs" / "quickstart").iterdir())
    before = _by_step(_rows(folder))
    assert max(step for step, _ in before) >= 4 and checkpoint.load(folder / "checkpoints/last.ckpt")["global_step"] == 4

    _crash_at(monkeypatch, 4)  # a resume that fails at once keeps every row before the checkpoint
    with pytest.raises(RuntimeError, match="injected crash"):
        run_job(SIX)
    kept = {k: v for k, v in _by_step(_rows(folder)).items() if k[0] < 4}
    assert kept == {k: v for k, v in before.items() if k[0] < 4}

    resumed, _ = run_job(SIX)
    after = _by_step(_rows(folder))
    assert sorted(after) == sorted(reference)
    for key, row in reference.items():
        for col in ("train/loss", "val/loss", "lr-AdamW/pg1"):
            if row.get(col):
                assert float(after[key][col]) == pytest.approx(float(row[col]), rel=1e-6), (key, col)
    assert resumed["table/val_loss"] == pytest.approx(straight["table/val_loss"], rel=1e-6)
    assert json.loads((folder / "run.json").read_text())["status"] == "complete"


def test_a_crash_right_after_a_step_checkpoint_loses_no_metrics_row(run_job, tmp_path, monkeypatch):
    """Lightning logs a batch's row after the callbacks' on_train_batch_end, where a step checkpoint is written: the
    checkpoint carries that row, and the resume writes it back (the resumed run starts after that batch)."""
    from runners.lm.checkpointing import StepCheckpoint

    args = LM + ["trainer.max_steps=6", "runner.checkpoint_every=3", "trainer.val_check_interval=2",
                 "trainer.log_every_n_steps=1"]  # a checkpoint at step 3, away from the validations (2, 4, 6)
    straight, _ = run_job(args, log_dir=tmp_path / "straight")
    reference = _by_step(_rows(next((tmp_path / "straight" / "quickstart").iterdir())))
    original = StepCheckpoint.on_train_batch_end

    def crash_after_saving(self, trainer, *a):
        original(self, trainer, *a)
        if trainer.global_step == 3:
            raise RuntimeError("injected crash after the checkpoint")

    monkeypatch.setattr(StepCheckpoint, "on_train_batch_end", crash_after_saving)
    with pytest.raises(RuntimeError, match="injected crash"):
        run_job(args)
    folder = next((tmp_path / "logs" / "quickstart").iterdir())
    assert checkpoint.load(folder / "checkpoints/last.ckpt")["global_step"] == 3
    assert not [k for k in _by_step(_rows(folder)) if k[0] == 2 and "train/loss" in k[1]]  # the crash came first
    monkeypatch.setattr(StepCheckpoint, "on_train_batch_end", original)
    resumed, _ = run_job(args)
    after = _by_step(_rows(folder))
    assert sorted(after) == sorted(reference)
    for key, row in reference.items():
        if row.get("train/loss"):
            assert float(after[key]["train/loss"]) == pytest.approx(float(row["train/loss"]), rel=1e-6), key
    assert resumed["table/val_loss"] == pytest.approx(straight["table/val_loss"], rel=1e-6)


def test_trim_metrics_drops_rows_after_the_checkpoint_and_writes_its_pending_row_back_once(tmp_path):
    from reprolab.csvlog import read_rows, trim_metrics, write_rows

    path = tmp_path / "metrics.csv"
    rows = [{"step": "0", "train/loss": "3.0", "lr": ""}, {"step": "1", "train/loss": "", "lr": "0.1"},
            {"step": "3", "train/loss": "2.0", "lr": ""}]
    write_rows(path, ["step", "train/loss", "lr"], rows)
    pending = {"step": 1, "train/loss": 2.5, "train/grad_norm": 0.5}
    assert trim_metrics(path, 2, pending) == 1
    header, got = read_rows(path)
    assert header == ["step", "train/loss", "lr", "train/grad_norm"]
    assert [(r["step"], r["train/loss"], r["train/grad_norm"]) for r in got] == [("0", "3.0", ""), ("1", "", ""),
                                                                              ("1", "2.5", "0.5")]
    assert trim_metrics(path, 2, pending) == 0 and read_rows(path)[1] == got  # already there: not twice
    assert trim_metrics(path, 1, None) == 2 and [r["step"] for r in read_rows(path)[1]] == ["0"]


# ---- disk full ------------------------------------------------------------------------------
def _enospc(monkeypatch, after_calls: int = 0, nbytes: int = 4096):
    """torch.save writes ``nbytes`` then fails with ENOSPC, from call number ``after_calls + 1`` on."""
    real, calls = torch.save, []

    def save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) <= after_calls:
            return real(obj, f, *args, **kwargs)
        f.write(b"\0" * nbytes)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save)
    return calls


def test_a_full_disk_keeps_the_old_checkpoint_and_removes_the_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint.save_atomic({"step": 1, "w": torch.ones(1000)}, path)
    old = path.read_bytes()
    _enospc(monkeypatch)
    with pytest.raises(checkpoint.CheckpointWriteError) as e:
        checkpoint.save_atomic({"step": 2, "w": torch.ones(1000)}, path)
    message = str(e.value)
    assert "\n" not in message and isinstance(e.value, UserError) and e.value.__suppress_context__
    assert f"in {path.parent}: no space left on device" in message and " available" in message
    assert re.search(r"needs about [4-9]\.\d KB", message) and "the previous last.ckpt is intact" in message
    assert path.read_bytes() == old and sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]


def test_a_temp_file_left_by_a_killed_write_is_cleared_by_the_next_save(tmp_path):
    path = tmp_path / "last.ckpt"
    stale = tmp_path / ".last.ckpt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    checkpoint.save_atomic({"global_step": 3}, path)
    assert checkpoint.load(path)["global_step"] == 3 and not stale.exists()


def test_every_runner_saves_through_the_atomic_writer(tmp_path, monkeypatch):
    from runners.generate import Accumulator, _save
    from runners.numeric import checkpoint as numeric_checkpoint

    _enospc(monkeypatch)
    run = RunDir(tmp_path / "run")
    with pytest.raises(checkpoint.CheckpointWriteError, match="no space left"):
        _save(run, Accumulator())
    with pytest.raises(checkpoint.CheckpointWriteError, match="no space left"):
        numeric_checkpoint.save(run.last_ckpt, {"solver": {}})
    assert list(run.checkpoint_dir.iterdir()) == []


def test_a_full_disk_mid_run_fails_with_one_line_and_keeps_the_last_checkpoint(run_job, tmp_path, monkeypatch):
    _enospc(monkeypatch, after_calls=1)  # the step-2 checkpoint is written, the step-4 one hits the full disk
    with pytest.raises(checkpoint.CheckpointWriteError) as e:
        run_job(SIX)
    folder = next((tmp_path / "logs" / "quickstart").iterdir())
    assert "\n" not in str(e.value) and str(folder / "checkpoints") in str(e.value)
    meta = json.loads((folder / "run.json").read_text())
    assert meta["status"] == "failed" and "no space left on device" in meta["error"]
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["last.ckpt"]
    monkeypatch.undo()
    assert checkpoint.load(folder / "checkpoints" / "last.ckpt")["global_step"] == 2
    results, _ = run_job(SIX)  # space freed: the same command resumes from step 2
    assert results["train/steps"] == 6


def test_any_disk_full_error_in_a_run_is_one_line_naming_the_folder(run_job, tmp_path, monkeypatch):
    from reprolab.app import DiskFullError
    from reprolab.csvlog import AppendingWriter

    def full(self):
        raise OSError(errno.ENOSPC, "No space left on device", self.metrics_file_path)

    monkeypatch.setattr(AppendingWriter, "save", full)
    with pytest.raises(DiskFullError) as e:
        run_job(SIX)
    folder = next((tmp_path / "logs" / "quickstart").iterdir())
    assert "\n" not in str(e.value) and str(folder) in str(e.value) and "B available" in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__
    assert json.loads((folder / "run.json").read_text())["status"] == "failed"


def test_run_json_is_never_half_written(tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    run.meta = {"status": "running"}
    run.save_meta()
    before = (run.path / "run.json").read_text()

    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError):
        run.fail(RuntimeError("boom"))
    assert (run.path / "run.json").read_text() == before and [p.name for p in run.path.iterdir()] == ["run.json"]


# ---- corrupt checkpoint ---------------------------------------------------------------------
def test_a_truncated_last_ckpt_is_named_with_the_fix_and_nothing_is_deleted(run_job, tmp_path, monkeypatch):
    _crash_at(monkeypatch, 5)
    with pytest.raises(RuntimeError, match="injected crash"):
        run_job(SIX)
    folder = next((tmp_path / "logs" / "quickstart").iterdir())
    last, prev = folder / "checkpoints" / "last.ckpt", folder / "checkpoints" / "last.prev.ckpt"
    assert checkpoint.load(prev)["global_step"] == 2
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    # W&B's service appends to its own logs under wandb/ after a run ends: those are not the run's to keep still
    files = {p: p.read_bytes() for p in folder.rglob("*")
             if p.is_file() and p.name not in ("run.json", "run.log") and "wandb" not in p.relative_to(folder).parts}

    with pytest.raises(checkpoint.CorruptCheckpointError) as e:
        run_job(SIX)
    message = str(e.value)
    assert "\n" not in message and f"checkpoint {last} is unreadable" in message and "Nothing was deleted" in message
    assert f"{prev} (step 2)" in message and f"cp {prev} {last}" in message
    assert {p: p.read_bytes() for p in files} == files and set(files) <= set(folder.rglob("*"))
    assert json.loads((folder / "run.json").read_text())["status"] == "failed"

    os.replace(last, last.with_name("last.ckpt.bad"))  # the fix the message gives
    last.write_bytes(prev.read_bytes())
    results, _ = run_job(SIX)
    assert results["train/steps"] == 6


def test_a_corrupt_checkpoint_without_a_previous_one_offers_a_fresh_start(tmp_path):
    path = tmp_path / "run" / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(checkpoint.CorruptCheckpointError, match=r"unreadable.*Nothing was deleted.*move its folder away") as e:
        checkpoint.load(path)
    assert "prev" not in str(e.value) and path.exists()


def test_the_lm_module_and_callbacks_pickle_for_ddp_spawn(compose, tmp_path):
    """ddp_spawn pickles the module and the callbacks into its workers (a lambda in them breaks it)."""
    import pickle

    from reprolab.config import validate
    from runners.lm.callbacks import Finalize, Throughput, WorkerLogging
    from runners.lm.module import LMModule

    cfg, job = compose(LM)
    objs = validate(cfg, job.overrides)
    model = objs["model"].build(32)
    module = LMModule(model, objs["roles"], objs["runner"], entropy_floor=1.0)
    module._val_sums["loss"]  # the defaultdict's factory is pickled too
    callbacks = [WorkerLogging(tmp_path / "run.log"), Throughput(), Finalize(tmp_path / "last.ckpt")]
    assert len(pickle.loads(pickle.dumps((module, callbacks)))[1]) == 3


# ---- kill -9, spawned workers, log lines (subprocesses: slow) --------------------------------
def _run_py(args, log_dir, **kw):
    # A child must not attach to this process's W&B service (see tests/test_runs.py::_run_py).
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_SERVICE")}
    env.update(WANDB_MODE="offline", PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "run.py", f"paths.log_dir={log_dir}", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _finish(proc) -> str:
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    return out


KILL_ARGS = ["trainer.max_steps=24", "trainer.val_check_interval=6", "runner.checkpoint_every=4",
             "trainer.log_every_n_steps=1", "trainer.deterministic=true", "trainer.enable_progress_bar=false",
             "data.batch_size=8", "data.val_sequences=16", "method=adamw"]


@pytest.mark.slow
def test_sigkill_then_resume_keeps_every_metrics_row_once(tmp_path):
    straight = _run_py(KILL_ARGS, tmp_path / "a")
    killed = _run_py(KILL_ARGS, tmp_path / "b", start_new_session=True)
    folder = tmp_path / "b" / "quickstart"
    deadline = time.time() + 300
    while not list(folder.glob("*/checkpoints/last.prev.ckpt")):  # a second checkpoint: step 8
        assert killed.poll() is None and time.time() < deadline, killed.stdout.read()
        time.sleep(0.05)
    time.sleep(0.3)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    run = RunDir(next(folder.iterdir()))
    step = checkpoint.load(run.last_ckpt)["global_step"]
    assert run.resuming and 8 <= step < 24
    logged = _by_step(_rows(run.path))  # as the kill left it
    _finish(_run_py(KILL_ARGS, tmp_path / "b"))
    _finish(straight)
    reference = _by_step(_rows(next((tmp_path / "a" / "quickstart").iterdir())))
    assert {k for k in reference if k[0] < step} <= set(logged)  # every row before the checkpoint reached the disk
    after = _by_step(_rows(run.path))
    assert sorted(after) == sorted(reference)  # every step's rows, each once
    for key, row in after.items():
        if key[0] < step and key in logged:  # written before the kill: kept as it was
            assert row == logged[key]
        assert float(row.get("train/loss") or 0) == pytest.approx(float(reference[key].get("train/loss") or 0), rel=1e-5)
    assert json.loads(run.results_file.read_text())["table/val_loss"] == pytest.approx(
        json.loads(next((tmp_path / "a" / "quickstart").glob("*/results.json")).read_text())["table/val_loss"], rel=1e-5)


def _log_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("[20") and "][" in line]


SPAWN_ARGS = ["trainer.devices=2", "trainer.max_steps=8", "trainer.val_check_interval=4", "runner.checkpoint_every=4",
              "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false"]


@pytest.mark.slow
def test_ddp_spawn_finishes_with_the_results_of_ddp(tmp_path):
    spawn_out = _finish(_run_py(["hardware=ddp_spawn", *SPAWN_ARGS], tmp_path / "spawn"))
    ddp_out = _finish(_run_py(["hardware=ddp", "trainer.accelerator=cpu", *SPAWN_ARGS], tmp_path / "ddp"))
    runs = {name: RunDir(next((tmp_path / name / "quickstart").iterdir())) for name in ("spawn", "ddp")}
    for name, run in runs.items():
        assert run.status == "complete", name
        rows = _by_step(_rows(run.path))
        assert {s for s, kind in rows if "val/loss" in kind} == {3, 7} and {s for s, _ in rows} == set(range(8)), name
        log_file = _log_lines((run.path / "run.log").read_text())
        assert len(log_file) == len(set(log_file)) and sum("`Trainer.fit` stopped" in x for x in log_file) == 1, name
    for out in (spawn_out, ddp_out):  # every log line printed once, the final report too
        assert len(_log_lines(out)) == len(set(_log_lines(out))) and out.count("results (") == 1, out
        assert len(re.findall(r"^## Quickstart", out, re.MULTILINE)) == 1, out  # one report, not one per rank
    a, b = runs["spawn"].results(), runs["ddp"].results()
    for key in ("table/val_loss", "table/best_val_loss", "train/loss", "train/steps", "table/opt_state_bytes"):
        assert a[key] == b[key], key


@pytest.mark.slow
def test_a_distributed_numeric_run_prints_each_line_once(tmp_path):
    out = _finish(_run_py(["experiment=pd_sliding_toy", "runner.backend=distributed", "runner.max_steps=2",
                           "runner.record_at=[]"], tmp_path))
    log_file = (next((tmp_path / "pd_sliding_toy").iterdir()) / "run.log").read_text()
    for text in (out, log_file):
        assert text.count("Initializing distributed: GLOBAL_RANK: 1,") == 1, text


def test_a_job_leaves_lightning_no_console_handler_of_its_own(run_job):
    import io
    import logging

    stray = logging.StreamHandler(io.StringIO())  # what `import lightning` adds to its logger
    logging.getLogger("lightning").addHandler(stray)
    try:
        run_job(["experiment=pd_sliding_toy", "runner.max_steps=2", "runner.record_at=[]"])
        assert stray not in logging.getLogger("lightning").handlers
    finally:
        logging.getLogger("lightning").removeHandler(stray)


def test_a_run_killed_after_its_final_checkpoint_reports_the_saved_results(run_job, tmp_path):
    first, job = run_job(SIX)
    run = RunDir(job.output_dir)
    run.results_file.unlink()  # killed between the final checkpoint and results.json
    run.meta["status"] = "running"
    run.save_meta()
    again, _ = run_job(SIX)
    assert again == first and json.loads(run.results_file.read_text())["train/steps"] == 6


def test_a_resumed_run_keeps_every_validation_in_its_history(run_job, tmp_path, monkeypatch):
    """The validation that ran right after the checkpoint was written (same step) is not lost on resume:
    the final checkpoint's val_history (hence best_val_loss) equals an uninterrupted run's."""
    straight, job = run_job(SIX, log_dir=tmp_path / "straight")
    reference = checkpoint.load(job.output_dir / "checkpoints/last.ckpt")["val_history"]
    _crash_at(monkeypatch, 5)
    with pytest.raises(RuntimeError, match="injected crash"):
        run_job(SIX)
    resumed, job = run_job(SIX)
    history = checkpoint.load(job.output_dir / "checkpoints/last.ckpt")["val_history"]
    assert [s for s, _ in history] == [s for s, _ in reference]
    assert [v for _, v in history] == pytest.approx([v for _, v in reference], rel=1e-6)
    assert resumed["table/best_val_loss"] == pytest.approx(straight["table/best_val_loss"], rel=1e-6)
