"""A run's output folder: everything needed to read, reproduce and resume the run.

    <run dir>/
      config.yaml      resolved config          overrides.yaml   the command-line overrides
      run.json         status, seed, git commit, package versions, host, W&B id, history
      results.json     final numbers (``table/*`` feed the paper tables), written atomically
      metrics.csv      every logged metric       checkpoints/last.ckpt
      wandb/           the offline W&B run       run.log          the job's log

The folder is a function of the experiment name and the overrides (see conf/hydra), so running
the same command again finds it: ``resume=auto`` continues an unfinished run from
``last.ckpt`` with the same W&B id, and reports a finished one without training again. Some settings
(hardware, paths.data_dir) stay out of the folder's name, so a folder found again is matched on its saved
config: a run made with other settings is an error, never silently reported or resumed.
"""
from __future__ import annotations

import contextlib
import json
import math
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

# Keys of the resolved config that cannot change a run's numbers. A folder found again is matched on
# every other leaf of its saved config.yaml (`RunDir.config_changes`); a key names its whole subtree.
#   name, group, paper    the folder's parent, the W&B group, the tables rebuilt afterwards
#   resume                what to do with an existing folder
#   logger, callbacks     observers: where metrics go (CSV, W&B), the learning-rate monitor
#   launcher              how sweep jobs are dispatched (in-process, joblib, SLURM)
#   cpu_threads           torch intra-op threads: speed only (a sum may round differently in its last bit)
#   paths                 where runs are written and where the checkout and the data are read from. A moved
#                         checkout or data folder holds the same run: ``data`` names which files are read,
#                         paths.data_dir only where they are (a different copy is not detected). Leaves that
#                         interpolate these paths (data.data_dir, runner.checkpoint) are compared relative to them.
#   trainer.enable_progress_bar, trainer.enable_model_summary   display only
#   trainer.num_sanity_val_steps   a validation pass before training: it updates nothing and draws no batch
#   optimize              which result a search (hydra/sweeper=optuna) reads: a grid point's folder serves it too
RESULT_NEUTRAL_KEYS = ("name", "group", "paper", "resume", "optimize", "logger", "callbacks", "launcher", "cpu_threads",
                       "paths", "trainer.enable_progress_bar", "trainer.enable_model_summary", "trainer.num_sanity_val_steps")
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


GENERATED = ("benchmarks/results", "experiments/*/results")  # folders of result files this repo writes


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
    # A wildcard pathspec matches whole paths only, so each folder is excluded with its files (``p/*``).
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  *(f":!{p}{tail}" for p in GENERATED for tail in ("", "/*")))
    return {"commit": commit, "dirty": bool(changed)}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in _PACKAGES:
        with contextlib.suppress(PackageNotFoundError):  # not installed: not recorded
            out[name] = version(name)
    return out


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what `platform` knows."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Where a run or a benchmark ran. `simd` is the vector unit torch's CPU kernels dispatch to (AVX2,
    AVX512, ...): two VMs of one name can differ there, and with it in rounding and in speed."""
    info = {"host": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count(), "cpu": cpu_model()}
    with contextlib.suppress(ImportError):
        import torch

        info["simd"] = torch.backends.cpu.get_cpu_capability()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def machine_line(info: dict | None = None) -> str:
    """One line for a results header: `vm, Linux-..., 2 CPUs (AMD EPYC, torch CPU kernels: AVX2)`."""
    m = machine() if info is None else info
    cpu = ", ".join(x for x in (m.get("cpu"), m.get("simd") and f"torch CPU kernels: {m['simd']}") if x)
    gpus = f", GPUs: {', '.join(m['gpus'])}" if m.get("gpus") else ""
    return f"{m['host']}, {m['platform']}, {m['cpus']} CPUs{f' ({cpu})' if cpu else ''}{gpus}"


class RunExistsError(UserError, RuntimeError):
    """The run folder already holds a run and the resume policy forbids touching it."""


class RunMismatchError(RunExistsError):
    """The run folder holds a run made with a config that differs in a key that changes results."""


def _leaves(node, prefix: str = "") -> dict:
    """``{dotted.key: value}`` for every leaf of a plain dict tree (lists are leaves)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out = {}
    for k, v in node.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _comparable(tree: dict) -> dict:
    """The leaves that can change results, with the paths.* folders written as ``${paths.<key>}``."""
    leaves = _leaves(tree)
    roots = sorted(((v, k) for k, v in leaves.items() if k.startswith("paths.") and isinstance(v, str) and len(v) > 1),
                   key=lambda vk: -len(vk[0]))
    out = {}
    for key, value in leaves.items():
        if any(key == n or key.startswith(n + ".") for n in RESULT_NEUTRAL_KEYS):
            continue
        if isinstance(value, str):
            for root, name in roots:
                value = value.replace(root, "${" + name + "}")
        out[key] = value
    return out


def _same(a, b) -> bool:
    """Equal config leaves; a NaN (``.nan`` in YAML) equals a NaN."""
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first); None without /proc or the process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (field 22 of /proc/<pid>/stat, clock ticks since boot), to tell it from
    a later process given the same pid; None where /proc is absent or the process is gone."""
    fields = _proc_stat(pid)
    return fields[19] if fields else None


def _alive(pid: int, started: str | None) -> bool:
    if pid == os.getpid():  # this process is about to run the job: the attempt recorded with its pid is over
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        pass
    fields = _proc_stat(pid)
    if fields and fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent: its run is over
        return False
    now = fields[19] if fields else None
    return started is None or now is None or now == started


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

    def _recorded_process(self) -> str | None:
        """For a run recorded as "running" on this host: "alive" or "gone", by its recorded pid and start
        time; None when it is not "running", has no pid (older run.json) or ran on another host."""
        m = self.meta
        if m.get("status") != "running" or "pid" not in m or m.get("host") != socket.gethostname():
            return None
        return "alive" if _alive(m["pid"], m.get("pid_start")) else "gone"

    def interruption(self) -> str | None:
        """Why a run recorded as "running" is not: its process on this host is gone (killed from outside:
        SIGKILL, the out-of-memory killer, a power cut). None when the run is not "running", ran on another
        host (its process cannot be checked from here) or its process is alive."""
        if self._recorded_process() != "gone":
            return None
        m = self.meta
        return (f"its process {m['pid']} on {m['host']} is gone without recording an end (killed from outside: "
                "SIGKILL, out of memory, a power cut)")

    def describe(self) -> str:
        """The recorded status, or "interrupted (why)" for a "running" run whose process is gone."""
        gone = self.interruption()
        return f"interrupted: {gone}" if gone else self.meta.get("status", "new")

    def config_changes(self, cfg: DictConfig) -> dict[str, tuple]:
        """``{key: (saved, now)}`` for every leaf that differs between the run's saved config.yaml and
        ``cfg`` (resolved), except `RESULT_NEUTRAL_KEYS`. A key absent on one side equals null on the other,
        so a slot added to the config tree since (null by default) is no change."""
        saved_file = self.path / "config.yaml"
        if not saved_file.exists():
            return {}
        try:
            saved = _comparable(OmegaConf.to_container(OmegaConf.load(saved_file), resolve=False) or {})
        except Exception as e:  # noqa: BLE001 - any parse error: the run cannot be matched
            raise RunExistsError(
                f"{saved_file} cannot be read ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}), so "
                f"whether {self.path} holds a run of these settings is unknown; nothing was changed. Start a separate "
                "run (name=<new name> or paths.log_dir=<dir>), or move that folder away to start it again."
            ) from None
        now = _comparable(OmegaConf.to_container(OmegaConf.create(OmegaConf.to_yaml(cfg, resolve=True)), resolve=False))
        return {k: (saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now)) if not _same(saved.get(k), now.get(k))}

    def _refuse_other_config(self, cfg: DictConfig, choices: dict | None, action: str) -> None:
        changes = self.config_changes(cfg)
        if not changes:
            return
        shown = [f"    {k}: {old!r} -> {new!r}" for k, (old, new) in list(changes.items())[:20]]
        if len(changes) > 20:
            shown.append(f"    ... and {len(changes) - 20} more")
        was = self.meta.get("choices") or {}
        groups = [f"{g}={v}" for g, v in sorted(was.items()) if choices is not None and choices.get(g) != v]
        same = " ".join(groups or [f"{k}={old}" for k, (old, _) in list(changes.items())[:6] if old is not None])
        raise RunMismatchError(
            f"{self.path} already holds a run (status: {self.describe()}) made with a different config, so it is "
            f"not {'reported' if action == 'report' else 'resumed'}; nothing was changed. Keys that change results "
            f"and differ (its config.yaml -> now):\n" + "\n".join(shown) + "\n"
            "  (a run folder is named by the command-line overrides only; hardware, paths.data_dir and the "
            "experiment files' contents are not in its name.)\n"
            "  Fix: start a separate run under another name or folder (name=<new name> or paths.log_dir=<dir>), "
            f"or use this run with the settings it was made with ({same or 'see its overrides.yaml'})."
        )

    def check_policy(self, policy: str, cfg: DictConfig | None = None, choices: dict | None = None) -> str:
        """What to do here under ``resume=policy``: ``start``, ``resume`` or ``report``. With ``cfg``, a run
        to report or resume must have been made with the same config (`config_changes`), else
        `RunMismatchError`; ``choices`` (the job's group choices) lets its message name the groups to repeat."""
        if policy not in RESUME_POLICIES:
            raise ValueError(f"resume={policy!r} is not one of {list(RESUME_POLICIES)}")
        status = self.status
        if policy == "must" and not self.resuming:
            raise RunExistsError(f"resume=must but {self.path} has no unfinished run with a last.ckpt (status: {self.describe()}).")
        if status == "new":
            return "start"
        if policy == "never":
            raise RunExistsError(
                f"{self.path} already holds a run (status: {self.describe()}). Nothing was changed. Continue it with "
                f"resume=auto, or start a separate run under another name (name=...) or paths.log_dir=..."
            )
        action = "report" if status == "complete" else "resume" if self.last_ckpt.exists() else "start"
        if cfg is not None and action != "start":  # a restart keeps nothing of the old attempt's numbers
            self._refuse_other_config(cfg, choices, action)
        return action

    # ---- writing --------------------------------------------------------------------------
    def start(self, cfg: DictConfig, overrides: list[str], choices: dict, action: str, key: str = "") -> None:
        """Record the config and provenance; on resume keep the W&B id and append to history."""
        self.path.mkdir(parents=True, exist_ok=True)
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        m = self.meta
        if self._recorded_process() == "alive":  # the same command run twice at once: one writer per folder
            raise RunExistsError(
                f"{self.path} is being run now by process {m['pid']} on this machine; nothing was changed. Wait for it "
                f"to end, or stop it (kill {m['pid']}) and run the same command again to resume it; or start a separate "
                "run (name=<new name> or paths.log_dir=<dir>)."
            )
        gone = self.interruption()
        if gone:  # killed from outside: nothing recorded its end, so record it before starting again
            self.meta["status"] = "interrupted"
            self.meta.setdefault("history", []).append({"time": now, "action": "interrupted", "detail": gone})
            self.save_meta()
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
        # Who runs it: the next start tells a run killed from outside (still "running") from a live one.
        self.meta.update(pid=os.getpid(), host=socket.gethostname(), pid_start=_process_start(os.getpid()))
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
