"""Paper tables: grouping, seed aggregation, best marking, paper values, errors."""
from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import pytest
import yaml

from experiments import report as rep
from experiments.tables import Table, TableError, load_runs, paper_tables
from reprolab.registry import ROOT


def fake_run(root: Path, name: str, key: str, choices: dict, results: dict, config: dict | None = None,
             status: str = "complete") -> None:
    folder = root / name / key
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"status": status, "name": name, "key": key, "choices": choices}))
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "config.yaml").write_text(yaml.safe_dump(config or {}))


TABLE = {
    "version": 1, "title": "T: loss", "runs": ["exp_*"],
    "rows": {"AdamW": {"method": "adamw"}, "COSMOS": {"method": "cosmos"}, "SOAP": {"method": "soap"}},
    "columns": {"small": {"match": {"model": "s"}, "metric": "table/val_loss", "higher_is_better": False},
                "acc": {"match": {"model": "s"}, "metric": "table/acc", "higher_is_better": True}},
    "paper": {"source": "spec §8", "values": {"AdamW": {"small": 3.5}}},
}


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "logs"
    for seed, (a, c) in enumerate([(3.0, 2.9), (3.2, 2.8)]):
        fake_run(root, "exp_a", f"method=adamw,seed={seed}", {"method": "adamw", "model": "s"},
                 {"table/val_loss": a, "table/acc": 0.5 + seed})
        fake_run(root, "exp_a", f"method=cosmos,seed={seed}", {"method": "cosmos", "model": "s"},
                 {"table/val_loss": c, "table/acc": 0.1})
    fake_run(root, "exp_a", "method=cosmos,seed=9", {"method": "cosmos", "model": "s"}, {"table/val_loss": 0.1},
             status="failed")  # unfinished runs never count
    fake_run(root, "other", "method=adamw", {"method": "adamw", "model": "s"}, {"table/val_loss": 0.0})
    return root


def table(tmp_path, spec=TABLE) -> Table:
    path = tmp_path / "paper" / "T.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return Table.load(path)


def test_cells_aggregate_seeds_and_mark_the_best(tmp_path, runs):
    t = table(tmp_path)
    cells = rep.build(t, load_runs(runs))
    adamw = cells["AdamW", "small"]
    assert (adamw.n, adamw.mean) == (2, pytest.approx(3.1)) and adamw.std == pytest.approx(statistics.stdev([3.0, 3.2]))
    assert cells["COSMOS", "small"].mean == pytest.approx(2.85)
    assert cells["SOAP", "small"].n == 0 and cells["SOAP", "small"].text("{:.3f}") == "not run"
    assert rep.best_rows(t, cells) == {"small": "COSMOS", "acc": "AdamW"}
    md = rep.markdown(t, cells, "hdr")
    assert "**2.85 ± 0.07071 (n=2)**" in md and "| 3.5 |" in md and "n/a" in md and "not run" in md


def test_report_writes_markdown_csv_png_and_an_offline_wandb_run(tmp_path, runs, monkeypatch):
    t = table(tmp_path)
    monkeypatch.setattr(rep, "paper_tables", lambda paper: [t])
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "out"
    [md] = rep.report("paper", runs, out)
    assert md.exists() and (out / "T.png").stat().st_size > 1000
    rows = list(csv.DictReader((out / "T.csv").open()))
    assert {(r["row"], r["column"]) for r in rows} == {(r, c) for r in TABLE["rows"] for c in TABLE["columns"]}
    assert list((out / "wandb").glob("offline-run-*")), "the tables were not logged to W&B"


def test_metric_no_run_wrote_is_an_error_naming_it(tmp_path, runs):
    spec = dict(TABLE, columns={"x": {"metric": "table/bleu", "higher_is_better": True}}, paper=None)
    with pytest.raises(TableError, match=r"table/bleu.*table/val_loss"):
        rep.build(table(tmp_path, spec), load_runs(runs))


def test_cells_with_several_settings_need_best_of(tmp_path):
    root = tmp_path / "logs"
    for lr, loss in [(1e-3, 3.0), (3e-3, 2.5)]:
        for seed in (0, 1):
            fake_run(root, "exp_a", f"method.lr={lr},method=adamw,seed={seed}", {"method": "adamw", "model": "s"},
                     {"table/val_loss": loss + 0.01 * seed, "table/acc": 0})
    with pytest.raises(TableError, match="best_of"):
        rep.build(table(tmp_path), load_runs(root))
    cells = rep.build(table(tmp_path, dict(TABLE, best_of=True)), load_runs(root))
    assert cells["AdamW", "small"].mean == pytest.approx(2.505) and "0.003" in cells["AdamW", "small"].setting


@pytest.mark.parametrize("bad, msg", [({"version": 2}, "version"), ({"rows": None}, "rows"),
                                      ({"colour": 1}, "unknown keys"),
                                      ({"paper": {"values": {"Lion": {"small": 1}}}}, "unknown row")])
def test_malformed_tables_are_rejected(tmp_path, bad, msg):
    with pytest.raises(TableError, match=msg):
        table(tmp_path, {**TABLE, **bad})


def test_every_committed_table_definition_loads():
    papers = sorted(p.name for p in (ROOT / "experiments").iterdir() if p.is_dir() and list(p.glob("*.yaml")))
    assert "quickstart" in papers
    for paper in papers:
        assert paper_tables(paper)


@pytest.mark.parametrize("status, built", [("COMPLETED", True), ("FAILED", False)])
def test_tables_are_rebuilt_after_a_finished_run_only(status, built, monkeypatch):
    """A failed run filled no cell: its error stays the last thing printed."""
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    from experiments.report import ReportCallback

    calls = []
    callback = ReportCallback()
    monkeypatch.setattr(callback, "_build", lambda papers, config: calls.append(papers))
    config = OmegaConf.create({"paper": "cosmos"})
    callback.on_job_end(config, JobReturn(status=getattr(JobStatus, status)))
    callback.on_run_end(config)
    assert calls == ([{"cosmos"}] if built else [])
