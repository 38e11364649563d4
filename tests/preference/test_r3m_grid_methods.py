"""The R3M grid runs as one multirun over conf/r3m_grid_method (experiments/r3m/run_grid.sh): every row of its
tables must be filled by exactly one method preset, and the script must sweep all of them."""
from __future__ import annotations

import re
from pathlib import Path

from experiments.tables import Run, paper_tables

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted(p.stem for p in (ROOT / "conf/r3m_grid_method").glob("*.yaml"))


def _run_of(compose, preset: str) -> Run:
    cfg, job = compose(["experiment=r3m_grid/clean", f"+r3m_grid_method={preset}"], multirun=True)
    return Run(job.output_dir, cfg.name, job.choices, job.key, cfg, {})


def test_run_grid_sweeps_every_preset():
    script = (ROOT / "experiments/r3m/run_grid.sh").read_text()
    swept = re.search(r'^METHODS="([^"]+)"', script, re.MULTILINE).group(1).split(",")
    assert sorted(swept) == PRESETS


def test_each_row_of_every_grid_table_is_one_preset(compose):
    runs = {p: _run_of(compose, p) for p in PRESETS}
    tables = [t for t in paper_tables("r3m") if all(r.startswith("r3m_grid_") for r in t.runs)]
    assert len(tables) == 6  # one per corruption setting
    for table in tables:
        assert len(table.rows) == len(PRESETS), table.title
        for row, match in table.rows.items():
            hits = [p for p, run in runs.items() if run.matches(match)]
            assert len(hits) == 1, f"{table.title}: row {row!r} ({match}) is filled by {hits}"


def test_a_preset_sets_its_objective_and_settings(compose):
    cfg, job = compose(["experiment=r3m_grid/random_20", "+r3m_grid_method=rdpo"], multirun=True)
    assert job.choices["objective"] == "rdpo"
    assert (cfg.objective.margin, cfg.objective.beta, cfg.objective.flip_rate) == ("reward", 1.0, 0.1)
    assert job.key == "+r3m_grid_method=rdpo"
