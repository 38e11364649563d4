"""W&B dashboards as code (experiments/dashboard): every paper with tables builds offline, every panel reads a
key the paper's runs log (a tiny run per paper spec, read back from its offline W&B file; the committed
results for papers without one), the report step logs PNGs and files, and --push without a login or a
server stops at once."""
from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import pytest
import yaml

from experiments.dashboard import build, spec
from experiments.dashboard.__main__ import main as dashboard_main
from experiments.dashboard.wandb_file import logged, wait_finished
from experiments.tables import EXPERIMENTS_DIR
from tests.test_report import TABLE, fake_run

PAPERS = spec.papers()
WITH_SPEC = [p for p in PAPERS if spec.spec_module(p) is not None]
MUST_SHOW = ["cosmos", "gear", "nag_mf", "pd_sliding"]  # their dashboard.json is committed


def offline_run(root: Path) -> Path:
    """The one offline W&B run under ``root``, once W&B has written all of it."""
    [run] = sorted(Path(root).rglob("offline-run-*"))
    wait_finished(run)
    return run


def test_the_papers_with_tables_are_found():
    assert set(MUST_SHOW) <= set(PAPERS) and set(MUST_SHOW) <= set(WITH_SPEC)


@pytest.mark.parametrize("paper", PAPERS)
def test_every_paper_with_tables_builds_one_section_per_table(paper):
    dash = spec.load(paper)
    tables = {t.name for t in spec.paper_tables(paper)}
    assert {s.table.name for s in dash.sections} == tables
    blocks = build.spec_json(build.report(dash))["spec"]["blocks"]
    text = json.dumps(blocks)
    for name in tables:  # the table panel and its PNG, read from the paper's report run
        assert f'"table/{name}"' in text and f'"plot/{name}"' in text
    headings = [b for b in blocks if b["type"] == "heading" and b["level"] == 2]
    assert len(headings) == len(tables)
    for s in dash.sections:
        assert s.plots and s.commands[-1] == f"python -m experiments.report {paper}"


def test_a_paper_without_a_spec_gets_a_bar_plot_per_column_metric(tmp_path, monkeypatch):
    folder = tmp_path / "newpaper"
    folder.mkdir()
    (folder / "T.yaml").write_text(yaml.safe_dump(TABLE, sort_keys=False))
    monkeypatch.setattr(spec, "EXPERIMENTS_DIR", tmp_path)
    monkeypatch.setattr("experiments.tables.EXPERIMENTS_DIR", tmp_path)
    dash = spec.load("newpaper")
    [section] = dash.sections
    assert dash.spec is None and [p.kind for p in section.plots] == ["bar", "bar"]
    assert [p.y[0].name for p in section.plots] == ["table/val_loss", "table/acc"]
    assert section.plots[0].groupby == ("method", "model")  # what the rows and columns match on
    runset = build.spec_json(build.report(dash))["spec"]["blocks"]
    grouping = [g["name"] for b in runset if b["type"] == "panel-grid" for rs in b["metadata"]["runSets"]
                for g in rs["grouping"]]
    assert grouping == ["choices.value.method", "choices.value.model"]  # W&B config keys of the group choices


def test_a_spec_naming_a_table_the_paper_lacks_is_an_error(monkeypatch):
    module = spec.spec_module("nag_mf")
    monkeypatch.setitem(module.TABLES, "no_such_table", spec.Panels())
    with pytest.raises(spec.TableError, match="no_such_table.*not a table of nag_mf"):
        spec.load("nag_mf")


def test_plots_refuse_keys_of_the_wrong_kind():
    with pytest.raises(spec.TableError, match="line plot reads history keys"):
        spec.Line("summary:table/acc")
    with pytest.raises(spec.TableError, match="reads summary: or config: keys"):
        spec.Scatter("history:train/loss", "summary:table/acc")


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """Per paper with a spec: the keys its tiny probe run logged to its offline W&B run."""
    from reprolab.app import main
    from tests.conftest import compose_job

    seen = {}

    def _probe(paper: str):
        if paper not in seen:
            dash = spec.load(paper)
            assert dash.probe, f"experiments/{paper}/dashboard.py has no PROBE (a tiny run logging the panels' keys)"
            cfg, job = compose_job([*dash.probe, "logger=default", "cpu_threads=1"], tmp_path_factory.mktemp(paper))
            main(cfg, job)
            seen[paper] = logged(offline_run(job.output_dir / "wandb"))
        return seen[paper]

    return _probe


@pytest.mark.parametrize("paper", WITH_SPEC)
def test_every_panel_reads_a_key_the_papers_runs_log(paper, probed):
    keys = probed(paper)
    dash = spec.load(paper)
    assert build.missing(dash, keys) == []
    assert "name" in keys.config  # the run sets select the table's runs by it


def test_a_renamed_metric_breaks_the_check(probed):
    keys = probed("nag_mf")
    dash = spec.load("nag_mf")
    section = dash.sections[0]
    section.plots.append(spec.Plot("line", spec.Key("history", spec.STEP), (spec.Key("history", "train/rel_error"),),
                                   groupby=("method.algorith",)))
    assert build.missing(dash, keys) == [f"{section.table.name}: line plot 'train/rel_error': history:train/rel_error",
                                         f"{section.table.name}: line plot 'train/rel_error' groupby: config:method.algorith"]


def committed_metrics(paper: str) -> dict[str, set[str]]:
    """Per table, the metrics its committed results filled (n > 0): what the paper's runs logged."""
    out = {}
    for f in (EXPERIMENTS_DIR / paper / "results").glob("*.csv"):
        rows = list(csv.DictReader(f.open()))
        if rows and "metric" in rows[0]:
            out[f.stem] = {r["metric"] for r in rows if r.get("n") not in (None, "", "0")}
    return out


@pytest.mark.parametrize("paper", sorted(set(PAPERS) - set(WITH_SPEC)))
def test_default_panels_read_metrics_the_committed_runs_logged(paper):
    """Papers without a spec (and so without a probe run): each bar plot's metric must have been logged by a
    committed run of its table; a metric no committed run filled (a table not run yet, a column added since)
    cannot be vouched for, and the test says so rather than pass."""
    filled = committed_metrics(paper)
    unverified = [f"{s.table.name}: {key.name}" for s in spec.load(paper).sections for plot in s.plots
                  for key in plot.keys() if key.name not in filled.get(s.table.name, set())]
    if unverified:
        pytest.skip(f"{paper}: no committed run logged {unverified}; a dashboard.py with a PROBE would check them")


@pytest.mark.parametrize("paper", MUST_SHOW)
def test_the_committed_definition_is_what_the_code_builds(paper):
    committed = json.loads((EXPERIMENTS_DIR / paper / "results" / "dashboard.json").read_text())
    assert committed["report"] == build.spec_json(build.report(spec.load(paper))), (
        f"experiments/{paper}/results/dashboard.json is stale: rebuild it with `make dashboard PAPER={paper}` at a clean commit")
    assert committed["made_by"]["command"] == f"python -m experiments.dashboard {paper}"
    assert "uncommitted" not in committed["made_by"]["commit"]


def test_offline_build_writes_the_definition_and_a_note(tmp_path):
    dashboard_main(["pd_sliding", "--out", str(tmp_path)])
    definition = json.loads((tmp_path / "dashboard.json").read_text())
    assert definition["report"]["displayName"] == "reprolab: pd_sliding tables"
    note = (tmp_path / "dashboard.md").read_text()
    assert "history:train/gap vs history:train/grad_evals" in note and "--push" in note


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("--push touched the network before its checks failed")

    monkeypatch.setattr(socket, "create_connection", refuse)


def test_push_without_a_login_stops_at_once(tmp_path, monkeypatch, no_network, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))  # absent
    with pytest.raises(SystemExit) as stop:
        dashboard_main(["cosmos", "--push", "--out", str(tmp_path)])
    assert "needs a W&B login" in str(stop.value) and "wandb login" in str(stop.value)
    assert not (tmp_path / "dashboard.json").exists()  # nothing done before the check


def test_push_without_a_server_stops_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    with socket.socket() as s:  # a port nothing listens on: refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(SystemExit) as stop:
        dashboard_main(["cosmos", "--push", "--out", str(tmp_path)])
    assert f"cannot reach http://127.0.0.1:{port}" in str(stop.value)


def test_the_login_is_read_from_netrc(tmp_path, monkeypatch):
    from experiments.dashboard import push

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password abc123\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert push.api_key("https://api.wandb.ai") == "abc123" and push.api_key("https://other.host") is None


def test_the_report_step_logs_each_tables_png_and_files_to_wandb(tmp_path, monkeypatch):
    from experiments import report as rep
    from experiments.dashboard.wandb_file import records
    from experiments.tables import Table

    (tmp_path / "paper").mkdir()
    (tmp_path / "paper" / "T.yaml").write_text(yaml.safe_dump(TABLE, sort_keys=False))
    t = Table.load(tmp_path / "paper" / "T.yaml")
    for seed in (0, 1):
        fake_run(tmp_path / "logs", "exp_a", f"method=adamw,seed={seed}", {"method": "adamw", "model": "s"},
                 {"table/val_loss": 3.0 + seed, "table/acc": 0.5})
    monkeypatch.setattr(rep, "paper_tables", lambda paper: [t])
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "out"
    rep.report("paper", tmp_path / "logs", out)
    run = offline_run(out / "wandb")
    keys = logged(run)
    assert set(build.report_keys("T")) <= keys.summary  # what the dashboards' table panels read
    assert keys.job_type == build.REPORT_JOB and keys.group == "paper"  # and how they find the report run
    assert list((run / "files" / "media" / "images" / "plot").glob("T_*.png"))
    [artifact] = [r.artifact for r in records(next(run.glob("run-*.wandb")))
                  if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "paper-tables"]
    assert {e.path for e in artifact.manifest.contents} == {"T.md", "T.csv", "T.png"}


def test_the_reader_joins_records_split_across_blocks(tmp_path, monkeypatch):
    """A config larger than one 32 KiB block is split into FIRST/MIDDLE/LAST chunks; it must read back whole."""
    import wandb

    monkeypatch.setenv("WANDB_SILENT", "true")
    big = {f"k{i}": "v" * 100 for i in range(800)}  # about 90 KB: three blocks
    run = wandb.init(mode="offline", dir=str(tmp_path), project="t", config={"big": big, "name": "x"})
    for step in range(3):
        run.log({"train/loss": 1.0 / (step + 1)}, step=step)
    run.summary["table/acc"] = 0.5
    run.finish()
    keys = logged(offline_run(tmp_path))
    assert {f"big.k{i}" for i in range(800)} <= keys.config and "name" in keys.config
    assert keys.history == {"train/loss"} and {"train/loss", "table/acc"} <= keys.summary


def test_a_run_plots_the_curves_its_table_cells_read(probed):
    """reprolab.tracking.log_curves: the tiny COSMOS run's table/best_val_loss is read from val/loss."""
    keys = probed("cosmos")
    charts = {k for k in keys.summary if k.startswith("curve/") and k.endswith("_table")}  # W&B stores a chart's data so
    assert charts == {"curve/val/loss_table"}


def test_which_curves_table_cells_read():
    from reprolab.tracking import curves_read

    results = {"table/best_val_loss": 1.6, "table/val_loss": 1.7, "table/gap@10": 0.1, "table/gap@20": 0.05,
               "table/iters_to_eps": 150, "train/loss": 1.8}
    series = ["train/loss", "val/loss", "train/gap", "val/excess_loss"]
    assert curves_read(results, series) == {"val/loss": ["table/best_val_loss"],
                                            "train/gap": ["table/gap@10", "table/gap@20"]}


def test_push_syncs_the_offline_runs_of_the_papers_tables_and_its_latest_report(tmp_path):
    from experiments.dashboard import push

    def run(name: str, key: str, segments: int) -> list[Path]:
        folder = tmp_path / name / key
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"name": name, "status": "complete"}))
        return [(folder / "wandb" / f"offline-run-2026120{i}_000000-id").mkdir(parents=True) or
                folder / "wandb" / f"offline-run-2026120{i}_000000-id" for i in range(segments)]

    toy = run("pd_sliding_toy", "method.R=3", 2)  # a resumed run: both segments
    libsvm = run("pd_sliding_libsvm_baselines", "method=defw", 1)
    run("nag_mf_kappa_sweep", "problem.d=5", 1)  # another paper's
    reports = [tmp_path / "reports" / "pd_sliding" / "wandb" / f"offline-run-2026120{i}_000000-r{i}" for i in (1, 2)]
    for r in reports:
        r.mkdir(parents=True)
    found = push.offline_runs(spec.load("pd_sliding"), tmp_path)
    assert sorted(found) == sorted(toy + libsvm + reports[-1:])


def test_push_dry_run_lists_what_it_would_sync_offline(tmp_path, monkeypatch, no_network, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))  # no login either: a dry run needs none
    run = tmp_path / "logs" / "nag_mf_kappa_sweep" / "problem.d=5" / "wandb" / "offline-run-20261202_000000-abc"
    run.mkdir(parents=True)
    (run.parents[1] / "run.json").write_text(json.dumps({"name": "nag_mf_kappa_sweep"}))
    dashboard_main(["nag_mf", "--push", "--dry-run", "--runs", str(tmp_path / "logs"), "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert "would sync 1 offline runs to <your default entity>/reprolab" in out and str(run) in out
