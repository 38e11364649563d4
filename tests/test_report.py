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


def test_a_column_no_run_measured_is_not_run_and_the_rest_is_built(tmp_path, runs):
    spec = dict(TABLE, columns={"x": {"metric": "table/bleu", "higher_is_better": True},
                                "small": TABLE["columns"]["small"]}, paper=None)
    cells = rep.build(table(tmp_path, spec), load_runs(runs))
    assert cells["AdamW", "x"].text("{:.3f}") == "not run" and cells["AdamW", "small"].mean == pytest.approx(3.1)
    [note] = cells.notes
    assert "'x'" in note and "table/bleu" in note and "table/val_loss" in note


def test_pd_sliding_toy_right_after_the_readme_command(tmp_path):
    """`python run.py experiment=pd_sliding_toy` records k = 10..60; k=100 and k=1000 come from other runs."""
    [toy] = [t for t in paper_tables("pd_sliding") if t.name == "toy"]
    root = tmp_path / "logs"
    config = {"method": {"R": 1.0, "inner": "cndg"}, "runner": {"backend": "simulated"}, "problem": {"workers": 8}}
    fake_run(root, "pd_sliding_toy", "default", {"method": "pd_sliding"},
             {f"table/gap@{k}": 1.0 / k**2 for k in (10, 20, 30, 40, 50, 60)}, config)
    cells = rep.build(toy, load_runs(root))
    assert cells["PDS + CndG, R=1", "k=10"].mean == pytest.approx(0.01)
    assert cells["PDS + CndG, R=1", "k=100"].n == 0 and cells["DeFW", "k=10"].n == 0
    assert any("table/gap@100" in n and n.endswith("the runs have table/gap@10, table/gap@20, table/gap@30, "
                                                    "table/gap@40, table/gap@50, table/gap@60).") for n in cells.notes)
    md = rep.markdown(toy, cells, "hdr")
    assert "| PDS + CndG, R=1 | **0.01 (n=1)** |" in md and "Note: column 'k=100'" in md


def quickstart_run(root, key, method, seed=0, steps=300, loss=1.5, batch=16):
    config = {"seed": seed, "paper": "quickstart", "trainer": {"max_steps": steps}, "data": {"batch_size": batch}}
    fake_run(root, "quickstart", key, {"method": method}, {"table/val_loss": loss, "table/excess_loss": loss - 1,
             "table/entropy_floor": 1.0, "table/opt_state_bytes": 10, "table/tokens_per_s": 100}, config)


def test_quickstart_runs_of_other_settings_get_labelled_tables_of_their_own(tmp_path):
    [main] = paper_tables("quickstart")
    assert main.assumes == {"trainer.max_steps": 300} and "300 steps" in main.title
    root = tmp_path / "logs"
    quickstart_run(root, "default", "cosmos", loss=1.41)                  # python run.py
    quickstart_run(root, "method=cosmos", "cosmos", loss=1.41)            # make run: the same run again
    quickstart_run(root, "method=adamw", "adamw", loss=1.65)
    quickstart_run(root, "trainer.max_steps=60", "cosmos", steps=60, loss=2.5)
    quickstart_run(root, "data.batch_size=8", "cosmos", batch=8, loss=1.6)
    quickstart_run(root, "data.batch_size=8,seed=1", "cosmos", seed=1, batch=8, loss=1.7)
    parts = rep.build_parts(main, load_runs(root))
    assert [p.label for p in parts] == [None, "data.batch_size=8",
                                        "trainer.max_steps=60 (the table assumes trainer.max_steps=300)"]
    assert parts[0]["COSMOS", "val loss"].mean == pytest.approx(1.41) and parts[0]["COSMOS", "val loss"].n == 1
    assert parts[1]["COSMOS", "val loss"].mean == pytest.approx(1.65) and parts[1]["AdamW", "val loss"].n == 0
    assert parts[2]["COSMOS", "val loss"].mean == pytest.approx(2.5)
    md = rep.markdown(main, parts[2], "hdr")
    assert md.startswith("### Quickstart") and "runs with trainer.max_steps=60" in md


def test_a_run_that_misses_the_tables_assumption_never_fills_it(tmp_path, monkeypatch):
    [main] = paper_tables("quickstart")
    root = tmp_path / "logs"
    quickstart_run(root, "trainer.max_steps=60", "cosmos", steps=60, loss=2.5)
    monkeypatch.setattr(rep, "paper_tables", lambda paper: [main])
    [md] = rep.report("quickstart", root, tmp_path / "out", use_wandb=False)
    text = md.read_text()
    first, second = text.split("### ")
    assert "2.5" not in first and "| COSMOS | not run |" in first and "2.5 (n=1)" in second
    rows = list(csv.DictReader((tmp_path / "out" / "main.csv").open()))
    assert {r["table"] for r in rows} == {"main", "main [trainer.max_steps=60 (the table assumes trainer.max_steps=300)]"}


def test_best_of_tables_report_the_best_setting(tmp_path):
    root = tmp_path / "logs"
    for lr, loss in [(1e-3, 3.0), (3e-3, 2.5)]:
        for seed in (0, 1):
            fake_run(root, "exp_a", f"method.lr={lr},method=adamw,seed={seed}", {"method": "adamw", "model": "s"},
                     {"table/val_loss": loss + 0.01 * seed, "table/acc": 0})
    parts = rep.build_parts(table(tmp_path), load_runs(root))  # not best_of: one table per lr
    assert [p.label for p in parts] == [None, "method.lr=0.003"]
    assert parts[0]["AdamW", "small"].mean == pytest.approx(3.005) and parts[1]["AdamW", "small"].n == 2
    cells = rep.build(table(tmp_path, dict(TABLE, best_of=True)), load_runs(root))
    assert cells["AdamW", "small"].mean == pytest.approx(2.505) and "0.003" in cells["AdamW", "small"].setting


@pytest.mark.parametrize("bad, msg", [({"version": 2}, "version"), ({"rows": None}, "rows"),
                                      ({"colour": 1}, "unknown keys"),
                                      ({"paper": {"values": {"Lion": {"small": 1}}}}, "unknown row"),
                                      ({"columns": {"acc": {"metric": "table/acc", "higher_is_better": True,
                                                            "scale": 0}}}, "scale must be a positive number")])
def test_malformed_tables_are_rejected(tmp_path, bad, msg):
    with pytest.raises(TableError, match=msg):
        table(tmp_path, {**TABLE, **bad})


def test_a_scaled_column_reports_ours_in_the_papers_unit(tmp_path, runs):
    spec = {**TABLE, "columns": {**TABLE["columns"], "acc": {**TABLE["columns"]["acc"], "scale": 100, "format": "{:.1f}"}}}
    cells = rep.build(table(tmp_path, spec), load_runs(runs))
    adamw = cells["AdamW", "acc"]  # the runs recorded 0.5 and 1.5
    assert (adamw.mean, adamw.std) == (pytest.approx(100.0), pytest.approx(100 * statistics.stdev([0.5, 1.5])))
    assert cells["AdamW", "small"].mean == pytest.approx(3.1)  # other columns as recorded


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


def test_a_sweep_with_a_failed_job_still_rebuilds_its_tables(tmp_path, monkeypatch):
    """Hydra's sweeper raises a failed job's error after the batch, and never calls on_multirun_end."""
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    at_exit, built = [], []
    monkeypatch.setattr(rep.atexit, "register", lambda fn, *args: at_exit.append((fn, args)))
    callback = rep.ReportCallback()
    monkeypatch.setattr(callback, "_build", lambda papers, config: built.append(papers))
    root = tmp_path / "logs"
    config = OmegaConf.create({"paths": {"log_dir": str(root)}})
    callback.on_multirun_start(config)
    quickstart_run(root, "method=adamw", "adamw")
    callback.on_job_end(config, JobReturn(status=JobStatus.COMPLETED))
    callback.on_job_end(config, JobReturn(status=JobStatus.FAILED, overrides=["data.seq_len=5000"]))
    assert built == []  # the sweep's error is raised now; at exit:
    [(fn, args)] = at_exit
    fn(*args)
    assert built == [{"quickstart"}] and callback.failed == ["data.seq_len=5000"]


@pytest.mark.slow
def test_a_real_sweep_with_a_failed_job_writes_the_tables_of_the_others(tmp_path):
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "run.py", "-m", f"paths.log_dir={tmp_path}", "data.seq_len=32,5000", "trainer.max_steps=2",
         "trainer.val_check_interval=2", "runner.checkpoint_every=2", "trainer.enable_progress_bar=false",
         "logger=csv", "data.val_sequences=8"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False, env=dict(os.environ, WANDB_MODE="offline"))
    assert out.returncode == 1 and "data.seq_len=5000 is longer than model.max_position_embeddings" in out.stderr
    table = (tmp_path / "reports" / "quickstart" / "main.md").read_text()
    main, other = table.split("### ")
    assert "| COSMOS | not run |" in main  # 2 steps never fill the table titled 300 steps
    assert "runs with trainer.max_steps=2, data.seq_len=32" in other and "| COSMOS | **" in other


def test_a_method_row_matches_a_run_that_chose_the_slot_itself(tmp_path):
    """`method: soap` in a table matches `optimizer=soap` runs (the preset's slot), not `kv_cache=` ones."""
    root = tmp_path / "logs"
    fake_run(root, "exp_a", "optimizer=soap", {"optimizer": "soap", "model": "s"}, {"table/val_loss": 2.5, "table/acc": 0.3})
    fake_run(root, "exp_a", "kv_cache=kivi", {"kv_cache": "kivi", "model": "s"}, {"table/val_loss": 9.0, "table/acc": 0.0})
    runs = load_runs(root)
    soap = [r for r in runs if r.matches({"method": "soap"})]
    assert [r.key for r in soap] == ["optimizer=soap"]
    assert not [r for r in runs if r.matches({"method": "adamw"})]
