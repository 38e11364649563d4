"""Helpers of the numeric papers' analysis scripts (experiments/nag_mf, experiments/pd_sliding):
named runs with their metrics.csv, and the provenance header of a committed result."""
from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

from experiments.tables import Run, load_runs
from reprolab.registry import ROOT


def named_runs(log_dir: str | Path, names: list[str]) -> list[Run]:
    """Finished runs whose experiment name is one of ``names`` (anywhere under ``log_dir``)."""
    return [r for r in load_runs(Path(log_dir)) if r.name in names]


def metrics(run: Run):
    """The run's metrics.csv as a DataFrame (one row per logged step)."""
    import pandas as pd

    return pd.read_csv(run.path / "metrics.csv")


def provenance(title: str, command: str) -> list[str]:
    """Markdown header of a committed result: the command, the commit and the machine."""

    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return [f"# {title}", "", f"- command: `{command}`", f"- commit: `{git('rev-parse', '--short', 'HEAD')}`{dirty}",
            f"- machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, shared with other jobs "
            "(wall times are upper bounds)", f"- written: {time.strftime('%Y-%m-%d %H:%M %Z')}", ""]
