"""A run's output folder: everything needed to read, reproduce and resume the run.

    <run dir>/
      config.yaml      resolved config          overrides.yaml   the command-line overrides
      run.json         status, seed, git commit, package versions, host, W&B id, history
      results.json     final numbers (``table/*`` feed the paper tables), written atomically
      metrics.csv      every logged metric       checkpoints/last.ckpt
      wandb/           the offline W&B run       run.log          the job's log

The folder is a function of the experiment name and the overrides (see conf/hydra), so running
the same command again finds it: ``resume=auto`` continues an unfinished run from
``last.ckpt`` with the same W&B id, and reports a finished one without training again.
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from reprolab.checks import UserError
from reprolab.registry import ROOT

RESUME_POLICIES = ("auto", "never", "must")
_PACKAGES = ("torch", "lightning", "transformers", "hydra-core", "omegaconf", "wandb", "datasets", "numpy", "triton")


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


GENERATED = ("benchmarks/results", "experiments/*/results")


def git_state() -> dict:
    def git(*args):
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    # A copy of the tree shipped to another machine (a GPU lent for a benchmark) may carry no .git, or
    # one that is not the commit whose files it holds: the caller then names the commit.
    if os.environ.get("REPROLAB_COMMIT"):
        return {"commit": os.environ["REPROLAB_COMMIT"], "dirty": None}
    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"commit": None, "dirty": None}
    # Uncommitted code changes; result files this repo writes (benchmark and paper tables) do not count.
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", *(f":!{p}" for p in GENERATED))
    return {"commit": commit, "dirty": bool(changed)}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        with contextlib.suppress(PackageNotFoundError):  # not installed: not recorded
            out[name] = version(name)
    return out


def machine() -> dict:
    info = {"host": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count()}
    with contextlib.suppress(ImportError):
        import torch

        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


class RunExistsError(UserError, RuntimeError):
    """The run folder already holds a run and the resume policy forbids touching it."""


@dataclass
class RunDir:
    path: Path
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.path = Path(self.path)
        meta_file = self.path / "run.json"
        if meta_file.exists():
            self.meta = json.loads(meta_file.read_text())

    # ---- paths ----------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_ckpt(self) -> Path:
        return self.checkpoint_dir / "last.ckpt"

    @property
    def results_file(self) -> Path:
        return self.path / "results.json"

    # ---- state ----------------------------------------------------------------------------
    @property
    def status(self) -> str:
        """``new`` | ``complete`` | ``unfinished`` (started, crashed, killed or failed)."""
        if not self.meta:
            return "new"
        return "complete" if self.meta.get("status") == "complete" and self.results_file.exists() else "unfinished"

    @property
    def resuming(self) -> bool:
        return self.status == "unfinished" and self.last_ckpt.exists()

    @property
    def wandb_id(self) -> str:
        return self.meta["wandb_id"]

    def results(self) -> dict:
        return json.loads(self.results_file.read_text())

    def check_policy(self, policy: str) -> str:
        """What to do here under ``resume=policy``: ``start``, ``resume`` or ``report``."""
        if policy not in RESUME_POLICIES:
            raise ValueError(f"resume={policy!r} is not one of {list(RESUME_POLICIES)}")
        status = self.status
        if policy == "must" and not self.resuming:
            raise RunExistsError(f"resume=must but {self.path} has no unfinished run with a last.ckpt (status: {status}).")
        if status == "new":
            return "start"
        if policy == "never":
            raise RunExistsError(
                f"{self.path} already holds a run (status: {status}). Nothing was changed. Continue it with "
                f"resume=auto, or start a separate run under another name (name=...) or paths.log_dir=..."
            )
        if status == "complete":
            return "report"
        return "resume" if self.last_ckpt.exists() else "start"

    # ---- writing --------------------------------------------------------------------------
    def start(self, cfg: DictConfig, overrides: list[str], choices: dict, action: str, key: str = "") -> None:
        """Record the config and provenance; on resume keep the W&B id and append to history."""
        self.path.mkdir(parents=True, exist_ok=True)
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        event = {"time": now, "action": action, **git_state(), "argv": sys.argv}
        if action == "resume" and self.meta:
            self.meta.setdefault("history", []).append(event)
            self.meta["status"] = "running"
        else:
            history = self.meta.get("history", [])
            if self.meta:  # restarting an attempt that died before its first checkpoint: keep its logs
                old = self.path / "metrics.csv"
                if old.exists():
                    old.rename(self.path / f"metrics.attempt{len(history)}.csv")
            self.meta = {
                "status": "running",
                "seed": cfg.get("seed"),
                "name": cfg.get("name"),
                "overrides": list(overrides),
                "key": key,
                "choices": dict(choices),
                "wandb_id": uuid.uuid4().hex[:12],
                "versions": versions(),
                "machine": machine(),
                "history": history + [event],
                **git_state(),
            }
            atomic_write(self.path / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
            atomic_write(self.path / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides))))
        self.save_meta()

    def save_meta(self) -> None:
        write_json(self.path / "run.json", self.meta)

    def finish(self, results: dict) -> None:
        write_json(self.results_file, results)
        self.meta["status"] = "complete"
        self.meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.meta.pop("error", None)
        self.save_meta()

    def fail(self, error: BaseException) -> None:
        self.meta["status"] = "failed"
        self.meta["error"] = f"{type(error).__name__}: {error}"
        self.save_meta()
