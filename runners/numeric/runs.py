"""Read finished numeric runs back: resolved config, final numbers and the metrics.csv trajectory.

    from runners.numeric.runs import load_runs
    for run in load_runs("logs", ["nag_mf_kappa_sweep"]):
        run.get("problem.kappa"), run.results["table/iters_to_eps"], run.metrics()["train/loss"]
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml


@dataclass
class Run:
    path: Path
    config: dict
    results: dict
    meta: dict = field(default_factory=dict)

    def get(self, dotted: str, default=None):
        node = self.config
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def choice(self, group: str):
        """The config-group option the run used (``method`` -> ``nag_mf``)."""
        return self.meta.get("choices", {}).get(group)

    def metrics(self):
        import pandas as pd

        return pd.read_csv(self.path / "metrics.csv")


def load_runs(log_dir: str | Path, names: list[str]) -> list[Run]:
    """Every complete run under ``log_dir/<name>/`` for each experiment name (folder globs allowed)."""
    runs = []
    for name in names:
        for results in sorted(Path(log_dir).glob(f"{name}/*/results.json")):
            folder = results.parent
            meta = json.loads((folder / "run.json").read_text())
            if meta.get("status") != "complete":
                continue
            runs.append(Run(folder, yaml.safe_load((folder / "config.yaml").read_text()),
                            json.loads(results.read_text()), meta))
    return runs


def provenance(title: str, command: str) -> list[str]:
    """Markdown header of a committed result: the command, the commit and the machine."""
    import os
    import platform
    import subprocess
    import time

    from reprolab.registry import ROOT

    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return [f"# {title}", "", f"- command: `{command}`", f"- commit: `{git('rev-parse', '--short', 'HEAD')}`{dirty}",
            f"- machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, shared with other jobs "
            "(wall times are upper bounds)", f"- written: {time.strftime('%Y-%m-%d %H:%M %Z')}", ""]
