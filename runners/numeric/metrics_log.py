"""metrics.csv in the run folder (always) and the run's W&B points (when the logger enables it)."""
from __future__ import annotations

import csv
import math
from pathlib import Path


class MetricsLog:
    """Rows of ``{"step": int, "<split>/<name>": float, ...}``; the first row fixes the columns.

    On resume from a checkpoint at ``resume_step`` the rows written after it by the interrupted
    attempt are dropped, so the file reads as one uninterrupted run.
    """

    def __init__(self, cfg, run_dir, resume_step: int | None = None):
        from reprolab.tracking import init_wandb

        self.path = Path(run_dir.path) / "metrics.csv"
        self.columns: list[str] | None = None
        if resume_step is not None and self.path.exists():
            with self.path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            self.columns = list(rows[0].keys()) if rows else None
            kept = [r for r in rows if int(r["step"]) <= resume_step]
            with self.path.open("w", newline="") as f:
                if self.columns:
                    w = csv.DictWriter(f, fieldnames=self.columns)
                    w.writeheader()
                    w.writerows(kept)
        elif self.path.exists():
            self.path.unlink()
        self.wandb = init_wandb(cfg, run_dir)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        new_file = self.columns is None
        if new_file:
            self.columns = list(row)
        elif list(row) != self.columns:
            raise ValueError(f"metrics.csv columns changed at step {step}: {sorted(set(row) ^ set(self.columns))}")
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            if new_file:
                w.writeheader()
            w.writerow(row)
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in row.items() if k != "step" and math.isfinite(v)}, step=step)
