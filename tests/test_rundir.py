"""Run folders: resume policy, atomic writes, provenance."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from reprolab.rundir import RunDir, RunExistsError, atomic_write, machine_line


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


def test_machine_names_the_cpu_and_the_kernels_torch_dispatches_to(tmp_path):
    """Two VMs of one name can differ in vector unit, and with it in rounding and speed: the record says which."""
    import torch

    m = json.loads((make(tmp_path, "running").path / "run.json").read_text())["machine"]
    assert m["simd"] == torch.backends.cpu.get_cpu_capability() and m["cpu"]
    assert f"torch CPU kernels: {m['simd']}" in machine_line(m) and m["cpu"] in machine_line(m)
    # a record written before these keys existed (committed benchmark JSONs) still makes a line
    assert machine_line({"host": "vm", "platform": "Linux", "cpus": 2}) == "vm, Linux, 2 CPUs"
    assert machine_line({"host": "h", "platform": "p", "cpus": 8, "gpus": ["H200"]}) == "h, p, 8 CPUs, GPUs: H200"


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


# ---- a folder found again is matched on its resolved config (issue 13, item 5) ----------------
def _cfg(**changes):
    cfg = {"seed": 1, "name": "x", "group": "g", "resume": "auto", "cpu_threads": None,
           "paths": {"log_dir": "/runs", "data_dir": "/data"},
           "data": {"data_dir": "/data", "train_files": ["lm/t.txt"], "seq_len": 64},
           "trainer": {"strategy": "auto", "devices": 1, "precision": "32-true", "enable_progress_bar": True},
           "logger": {"wandb": {"enabled": True}}}
    for key, value in changes.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return OmegaConf.create(cfg)


def finished(tmp_path, status="complete", ckpt=True, **changes):
    run = RunDir(tmp_path / "r")
    run.start(_cfg(**changes), ["seed=1"], {"hardware": "cpu", "method": "adamw"}, "start")
    if ckpt:
        run.checkpoint_dir.mkdir(parents=True)
        run.last_ckpt.write_bytes(b"ckpt")
    if status == "complete":
        run.finish({"table/val_loss": 1.0})
    else:
        run.meta["status"] = status
        run.save_meta()
    return RunDir(run.path)


@pytest.mark.parametrize("status", ["complete", "failed"])
def test_a_run_made_with_other_settings_is_neither_reported_nor_resumed(tmp_path, status):
    from reprolab.rundir import RunMismatchError

    run = finished(tmp_path, status)
    now = _cfg(**{"trainer.strategy": "ddp_spawn", "trainer.devices": 2})
    with pytest.raises(RunMismatchError) as e:
        run.check_policy("auto", now, {"hardware": "ddp_spawn", "method": "adamw"})
    msg = str(e.value)
    assert "trainer.strategy: 'auto' -> 'ddp_spawn'" in msg and "trainer.devices: 1 -> 2" in msg
    assert "name=<new name>" in msg and "paths.log_dir=" in msg and "hardware=cpu" in msg
    assert "precision" not in msg  # only what differs
    assert RunDir(run.path).meta == run.meta  # nothing was changed
    with pytest.raises(RunMismatchError):
        run.check_policy("must" if status == "failed" else "auto", now)


def test_settings_that_cannot_change_results_are_not_compared(tmp_path):
    run = finished(tmp_path)
    moved = _cfg(**{"paths.data_dir": "/mnt/copy", "data.data_dir": "/mnt/copy", "paths.log_dir": "/elsewhere",
                    "logger.wandb.enabled": False, "cpu_threads": 1, "group": "h", "resume": "must",
                    "trainer.enable_progress_bar": False})
    assert run.check_policy("auto", moved) == "report"
    # a data file inside the moved folder is the same file; another file is another run
    with pytest.raises(Exception, match=r"data.train_files: \['lm/t.txt'\] -> \['lm/u.txt'\]"):
        run.check_policy("auto", _cfg(**{"data.train_files": ["lm/u.txt"]}))


def test_a_slot_missing_on_one_side_equals_null_on_the_other(tmp_path):
    """The config tree gains top-level slots (optimizer, objective, ...), null by default."""
    from reprolab.rundir import RunMismatchError

    run = finished(tmp_path)
    assert run.check_policy("auto", _cfg(objective=None, adapter={})) == "report"
    nan = finished(tmp_path / "nan", **{"trainer.gradient_clip_val": float("nan")})
    assert nan.check_policy("auto", _cfg(**{"trainer.gradient_clip_val": float("nan")})) == "report"
    with pytest.raises(RunMismatchError, match=r"objective.name: None -> 'z_loss'"):
        run.check_policy("auto", _cfg(objective={"name": "z_loss"}))


def test_an_unreadable_saved_config_is_named_not_matched(tmp_path):
    run = finished(tmp_path)
    (run.path / "config.yaml").write_text("seed: [1\n  trainer: {")  # truncated
    with pytest.raises(RunExistsError, match=r"config.yaml cannot be read .*nothing was changed.*name=<new name>"):
        run.check_policy("auto", _cfg())


def test_a_restart_with_nothing_kept_is_not_compared(tmp_path):
    run = finished(tmp_path, "failed", ckpt=False)
    assert run.check_policy("auto", _cfg(**{"trainer.strategy": "ddp_spawn"})) == "start"


# ---- a run killed from outside is recognised at the next start (issue 13, item 6) -------------
def _run_in_child(path):
    """A process that starts a run in ``path`` and waits (a job mid-training), and the pid it runs as."""
    import subprocess
    import sys
    import time

    code = ("import sys, time; from omegaconf import OmegaConf; from reprolab.rundir import RunDir; "
            "RunDir(sys.argv[1]).start(OmegaConf.create({'seed': 1}), [], {}, 'start'); print('ok', flush=True); "
            "time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ok"
    time.sleep(0.05)
    return child


def test_a_run_still_running_elsewhere_is_not_started_again(tmp_path):
    """The same command in a second terminal: two processes must not write one run folder."""
    path = tmp_path / "r"
    child = _run_in_child(path)
    try:
        before = (path / "run.json").read_text()
        with pytest.raises(RunExistsError, match=rf"is being run now by process {child.pid} .*kill {child.pid}"):
            RunDir(path).start(OmegaConf.create({"seed": 1}), [], {}, "resume")
        assert (path / "run.json").read_text() == before
    finally:
        child.kill()
        child.wait()


def test_a_run_killed_from_outside_is_recorded_as_interrupted_before_it_resumes(tmp_path):
    import os
    import signal
    import time

    path = tmp_path / "r"
    child = _run_in_child(path)
    try:
        live = RunDir(path)
        assert live.meta["pid"] == child.pid and live.interruption() is None and live.describe() == "running"
        (path / "checkpoints").mkdir()
        (path / "checkpoints" / "last.ckpt").write_bytes(b"ckpt")
    finally:
        os.kill(child.pid, signal.SIGKILL)
    time.sleep(0.2)
    assert RunDir(path).interruption() is not None  # killed, not yet reaped by its parent (a zombie)
    child.wait()
    run = RunDir(path)
    assert run.meta["status"] == "running"  # nothing could record a SIGKILL
    with pytest.raises(RunExistsError, match=rf"status: interrupted: its process {child.pid} .* is gone"):
        run.check_policy("never")
    assert run.check_policy("auto") == "resume"
    run.start(OmegaConf.create({"seed": 1}), [], {}, "resume")
    meta = json.loads((path / "run.json").read_text())
    assert [h["action"] for h in meta["history"]] == ["start", "interrupted", "resume"]
    assert str(child.pid) in meta["history"][1]["detail"] and meta["status"] == "running"
    assert meta["pid"] == os.getpid()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times come from /proc (Linux)")
def test_a_recorded_pid_reused_by_another_process_is_not_mistaken_for_the_run(tmp_path):
    import os

    run = make(tmp_path, "running")
    assert run.interruption() is not None  # recorded with this test's own pid: that attempt is over
    run.meta.update(pid=os.getppid(), pid_start="1")  # a live process, started at another time
    assert "is gone" in run.interruption()
    run.meta["host"] = "another-host"  # cannot be checked from here: left as it is
    assert run.interruption() is None


def test_a_finished_run_is_not_reported_for_other_hardware(run_job, tmp_path):
    """The README's case: `hardware` is not in the folder's name, so a ddp_spawn run finds the finished
    single-process one; it must say so, not report it. A moved data folder is the same run."""
    from reprolab.rundir import RunMismatchError
    from tests.conftest import TINY

    args = [*TINY, "logger=csv", "callbacks=none", "data.val_sequences=8", "data.batch_size=4"]
    first, job = run_job(args)
    with pytest.raises(RunMismatchError, match=r"trainer.strategy: 'auto' -> 'ddp_spawn'(.|\n)*hardware=cpu"):
        run_job([*args, "hardware=ddp_spawn"])  # the same folder: hardware is not in its name
    again, job_again = run_job([*args, f"paths.data_dir={tmp_path / 'moved'}"])
    assert again == first and job_again.output_dir == job.output_dir


def test_regenerated_result_files_do_not_mark_the_tree_dirty(tmp_path, monkeypatch):
    """A results table rewritten in the tree (experiments/<paper>/results/..., benchmarks/results/...) is not a
    code change; an edited source file is."""
    import subprocess

    from reprolab import rundir

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    for rel in ("experiments/paper/results/t.md", "benchmarks/results/b.md", "code.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("old\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    monkeypatch.setattr(rundir, "ROOT", tmp_path)
    monkeypatch.delenv("REPROLAB_COMMIT", raising=False)
    for rel in ("experiments/paper/results/t.md", "benchmarks/results/b.md"):
        (tmp_path / rel).write_text("new\n")
    assert rundir.git_state()["dirty"] is False
    (tmp_path / "code.py").write_text("new\n")
    assert rundir.git_state()["dirty"] is True
