"""Shared pieces of the numeric tests: a CPU float64 context and small problem builders."""
from __future__ import annotations

from pathlib import Path

import torch

from reprolab.roles import SolveContext


def context(tmp_path: Path, **kw) -> SolveContext:
    return SolveContext(device=torch.device("cpu"), dtype=torch.float64, seed=0, cache_dir=Path(tmp_path) / "cache",
                        **kw)
