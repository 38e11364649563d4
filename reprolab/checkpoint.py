"""Checkpoints that survive a full disk, a kill and a corrupt file: one writer and one reader for
every runner (the `lm` runner's Lightning CheckpointIO plugin calls them too).

`save_atomic` writes a temp file in the checkpoint's folder and renames it over the old one only
when it is complete, so ``last.ckpt`` is always either the previous or the new checkpoint. Before
the rename the previous ``last.ckpt`` is kept as ``last.prev.ckpt`` (a hard link: no extra disk).
A failed write (ENOSPC or any OSError) removes the temp file and raises `CheckpointWriteError`: one
line naming the folder and the space needed vs available. `load` turns an unreadable file into
`CorruptCheckpointError`, naming the file and the fix, and never deletes anything.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from reprolab.checks import UserError


class CheckpointWriteError(UserError, OSError):
    """A checkpoint could not be written (disk full, quota, permissions); the old one is intact."""


class CorruptCheckpointError(UserError, RuntimeError):
    """A checkpoint exists but cannot be read (truncated or corrupt)."""


def previous(path: Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``last.ckpt`` -> ``last.prev.ckpt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def size(n: float) -> str:
    """Bytes as the user reads them: ``812 B``, ``3.1 MB``, ``12.4 GB``."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{int(n)} B"


def tensor_bytes(obj) -> int:
    """Bytes of the tensors in a (nested) checkpoint: about the size it takes on disk."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def _keep_previous(path: Path) -> None:
    """Hard-link the current checkpoint to ``<stem>.prev<suffix>`` (replacing an older one)."""
    if not path.exists():
        return
    prev = previous(path)
    tmp = prev.with_name(f".{prev.name}.link")
    try:
        tmp.unlink(missing_ok=True)
        os.link(path, tmp)
        os.replace(tmp, prev)
    except OSError:  # a filesystem without hard links: the new checkpoint is still written atomically
        tmp.unlink(missing_ok=True)


def save_atomic(obj, path, keep_previous: bool = True) -> None:
    """``torch.save(obj, path)`` via a temp file in the same folder and ``os.replace``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a write that was killed (one writer per run)
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        if keep_previous:
            _keep_previous(path)
        os.replace(tmp, path)
    except OSError as e:
        written = Path(tmp).stat().st_size if Path(tmp).exists() else 0
        Path(tmp).unlink(missing_ok=True)
        previous_size = path.stat().st_size if path.exists() else 0
        raise write_error(path, e, max(written, tensor_bytes(obj), previous_size)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_error(path: Path, error: OSError, needed: int) -> CheckpointWriteError:
    """The one-line message for a failed checkpoint write."""
    path = Path(path)
    free = shutil.disk_usage(path.parent).free
    what = "no space left on device" if error.errno in (errno.ENOSPC, errno.EDQUOT) else (error.strerror or str(error))
    kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written before"
    return CheckpointWriteError(
        f"could not write checkpoint {path.name} in {path.parent}: {what} (it needs about {size(needed)}, "
        f"{size(free)} available); {kept} and the partial file was removed. Free space there (or set "
        f"paths.log_dir=<a bigger disk>) and rerun the same command to resume."
    )


def load(path, map_location="cpu", weights_only: bool = False, mmap: bool = False):
    """``torch.load`` that names an unreadable file and the way out instead of a torch traceback."""
    import torch

    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only, mmap=mmap)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - a truncated zip, a bad pickle, a wrong magic: torch raises many types
        raise CorruptCheckpointError(corrupt_message(path, e)) from None


def readable_step(path: Path) -> int | None:
    """The step a checkpoint holds, or None when it cannot be read (cheap: memory-mapped)."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # noqa: BLE001 - any failure means "not readable" here
        return None
    if not isinstance(ckpt, dict):
        return None
    for key in ("global_step", "step"):
        if isinstance(ckpt.get(key), int):
            return ckpt[key]
    return -1


def corrupt_message(path: Path, error: BaseException) -> str:
    path = Path(path)
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    prev = previous(path)
    fix = ""
    if prev.exists():
        step = readable_step(prev)
        if step is not None:
            at = f" (step {step})" if step >= 0 else ""
            fix = (f"The checkpoint before it is readable: {prev}{at}; to continue from it, "
                   f"`mv {path} {path}.bad && cp {prev} {path}`, then rerun the same command. ")
    return (f"checkpoint {path} is unreadable ({type(error).__name__}: {first}); it may be truncated by a kill or a full "
            f"disk. Nothing was deleted. {fix}To start this run over instead, move its folder away "
            f"(`mv {path.parent.parent} {path.parent.parent}.old`) and rerun, or run it under another name (name=...).")
