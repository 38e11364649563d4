"""The lm runner logs train metrics only on the steps its loggers write (and the last): the R3M grid's per-step
cost (benchmarks/r3m_grid). What reaches metrics.csv and results.json must be what logging every step gives."""
from __future__ import annotations

import csv

from tests.conftest import TINY


def _rows(job) -> dict:
    with (job.output_dir / "metrics.csv").open() as f:
        return {(r["step"], k): v for r in csv.DictReader(f) for k, v in r.items()
                if k.startswith("train/") and k != "train/tokens_per_s" and v != ""}


def test_sparse_logging_writes_what_logging_every_step_writes(run_job, tmp_path):
    run = ["experiment=r3m_grid/irrational_p13", "objective=r3m", "trainer.max_steps=7", "trainer.val_check_interval=7",
           "logger=csv", "trainer.enable_progress_bar=false"]
    every, job1 = run_job([*run, "trainer.log_every_n_steps=1"], log_dir=tmp_path / "every")
    sparse, job3 = run_job([*run, "trainer.log_every_n_steps=3"], log_dir=tmp_path / "sparse")
    dense, rows = _rows(job1), _rows(job3)
    # Lightning writes the steps with (step + 1) % 3 == 0 and the last one (it stops there)
    assert rows and {step for step, _ in rows} == {"2", "5", "6"}
    assert all(dense[key] == v for key, v in rows.items())
    assert sparse["train/loss"] == every["train/loss"]  # the last step's loss, logged at a non-logging step
    assert {k: v for k, v in sparse.items() if k.startswith("table/val")} == \
        {k: v for k, v in every.items() if k.startswith("table/val")}
