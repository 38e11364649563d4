"""Helpers of the numeric papers' analysis scripts (experiments/nag_mf, experiments/pd_sliding):
named runs with their metrics.csv, and the provenance header of a committed result."""
from __future__ import annotations

import time
from pathlib import Path

from experiments.tables import Run, load_runs


def named_runs(log_dir: str | Path, names: list[str]) -> list[Run]:
    """Finished runs whose experiment name is one of ``names`` (anywhere under ``log_dir``)."""
    return [r for r in load_runs(Path(log_dir)) if r.name in names]


def metrics(run: Run):
    """The run's metrics.csv as a DataFrame (one row per logged step)."""
    import pandas as pd

    return pd.read_csv(run.path / "metrics.csv")


def provenance(title: str, command: str) -> list[str]:
    """Markdown header of a committed result: the command, the commit and the machine."""
    from reprolab.rundir import git_state, machine_line

    state = git_state()
    dirty = " (with uncommitted changes)" if state["dirty"] else ""
    return [f"# {title}", "", f"- command: `{command}`", f"- commit: `{(state['commit'] or 'unknown')[:7]}`{dirty}",
            f"- machine: {machine_line()}, shared with other jobs "
            "(wall times are upper bounds)", f"- written: {time.strftime('%Y-%m-%d %H:%M %Z')}", ""]
