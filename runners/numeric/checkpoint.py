"""One checkpoint per run, whatever the backend: per-worker tensors are gathered in worker order.

A `Solver.state_dict()` is ``{"worker": {name: (workers_here, ...)}, "shared": {...}}``. Saving
gathers the worker entries of every process (Fabric's all_gather) into ``(workers, ...)`` tensors;
loading slices this process's rows back out. A run checkpointed by the distributed backend can
therefore resume under the simulated one and vice versa.
"""
from __future__ import annotations

from pathlib import Path

import torch

from reprolab import checkpoint


def gather_state(state: dict, fabric) -> dict:
    """The full checkpoint (on every process): worker tensors concatenated over processes."""
    workers = state.get("worker", {})
    if fabric.world_size > 1:
        workers = {k: _all_gather(v, fabric) for k, v in workers.items()}
    return {"worker": {k: v.detach().cpu() for k, v in workers.items()}, "shared": state.get("shared", {})}


def _all_gather(t: torch.Tensor, fabric) -> torch.Tensor:
    import warnings

    with warnings.catch_warnings():  # Lightning's all_gather calls a torch API that torch marks deprecated
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        g = fabric.all_gather(t)  # (world, workers_here, ...)
    return g.reshape(-1, *t.shape[1:])


def slice_state(full: dict, rows: slice) -> dict:
    """This process's part of a gathered checkpoint (CPU tensors; the solver moves them)."""
    return {"worker": {k: v[rows] for k, v in full["worker"].items()}, "shared": full["shared"]}


def save(path: Path, payload: dict) -> None:
    """Atomic write (`reprolab.checkpoint.save_atomic`): a crash or a full disk never leaves a truncated
    last.ckpt, and the previous one is kept as last.prev.ckpt."""
    checkpoint.save_atomic(payload, path)


def load(path: Path) -> dict:
    """The checkpoint, or a `CorruptCheckpointError` naming the file and the fix."""
    return checkpoint.load(path, map_location="cpu", weights_only=False)
