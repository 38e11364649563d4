"""metrics.csv for Lightning runs that survives resumes and kills.

Lightning's CSVLogger deletes an existing metrics.csv when it starts, buffers rows for 100 steps and
rewrites the file in place when a new column appears. Here the file is continued (a resumed run
first drops the rows logged after its checkpoint: `trim_metrics`), every log call reaches the disk,
and a header change rewrites the file atomically (temp file + rename).
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from reprolab.rundir import atomic_write


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    """(header, rows) of a CSV file."""
    with Path(path).open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def write_rows(path: Path, fieldnames: list[str], rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buf.getvalue())


def trim_metrics(path: Path, resume_step: int, pending_row: dict | None = None) -> int:
    """Drop the rows of ``metrics.csv`` logged at ``step >= resume_step``, i.e. after the checkpoint a
    run resumes from (the resumed run logs those steps again); every earlier row is kept. ``pending_row``
    (``{"step": .., metric: value}``, a row the checkpoint carries because it is logged just after the
    checkpoint is written) is appended if the file holds no row at its step with its metrics. Returns how
    many rows were dropped."""
    path = Path(path)
    if not path.is_file():
        fieldnames, rows = [], []
    else:
        fieldnames, rows = read_rows(path)

    def logged_after(row: dict) -> bool:
        try:
            return int(float(row.get("step") or "nan")) >= resume_step
        except ValueError:  # no step (Lightning always writes one): keep the row
            return False

    kept = [r for r in rows if not logged_after(r)]
    dropped = len(rows) - len(kept)
    if pending_row is not None and not any(_same_row(r, pending_row) for r in kept):
        pending = {k: str(v) for k, v in pending_row.items()}
        fieldnames += [k for k in pending if k not in fieldnames]
        kept.append(pending)
    if kept != rows:
        write_rows(path, fieldnames, kept)
    return dropped


def _same_row(row: dict, pending: dict) -> bool:
    """Whether a file row is the pending row: the same step and the same metrics logged."""
    try:
        same_step = int(float(row.get("step") or "nan")) == int(pending["step"])
    except ValueError:
        return False
    return same_step and {k for k, v in row.items() if v not in ("", None)} == set(pending)


class AppendingWriter(ExperimentWriter):
    """Lightning's metrics.csv writer, except that an existing file is continued (its header is
    read back), never deleted, and a header change rewrites the file atomically."""

    def __init__(self, log_dir: str) -> None:
        self.metrics: list[dict] = []
        self.metrics_keys: list[str] = []
        self.hparams: dict = {}
        self._fs = get_filesystem(log_dir)
        self.log_dir = log_dir
        self.metrics_file_path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        os.makedirs(log_dir, exist_ok=True)
        if os.path.isfile(self.metrics_file_path):
            self.metrics_keys = read_rows(Path(self.metrics_file_path))[0]

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        write_rows(Path(self.metrics_file_path), fieldnames, read_rows(Path(self.metrics_file_path))[1])


class ResumableCSVLogger(CSVLogger):
    """CSVLogger writing through `AppendingWriter`. Use ``flush_logs_every_n_steps=1`` so a kill
    loses no row logged before the last checkpoint."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingWriter:
        if self._experiment is None:
            self._experiment = AppendingWriter(self.log_dir)
        return self._experiment
