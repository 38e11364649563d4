"""The numeric runner end to end: composed configs, run folders, metrics, resume, bad input."""
from __future__ import annotations

import csv
import json

import pytest

from reprolab.checks import ConfigError
from reprolab.roles import COUNTERS
from tests.conftest import compose_job

MF_TINY = ["experiment=nag_mf_kappa_sweep", "problem.kappa=10", "runner.log_every=100"]
TOY_TINY = ["experiment=pd_sliding_toy", "problem.workers=4", "runner.max_steps=4", "runner.record_at=[2,4]"]


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_nag_mf_run_writes_results_metrics_and_wandb(run_job):
    results, job = run_job(MF_TINY + ["method.algorithm=nag"])
    assert results["table/iters_to_eps"] == 150  # spec §4: d = 20, c = 100, kappa = 10
    for key in COUNTERS:
        assert f"table/{key}" in results
    assert results["table/wall_s"] > 0
    log = rows(job.output_dir / "metrics.csv")
    assert [int(r["step"]) for r in log] == [0, 100, 150] and float(log[-1]["train/rel_err"]) <= 1e-6
    assert json.loads((job.output_dir / "results.json").read_text())["table/iters_to_eps"] == 150
    assert (job.output_dir / "wandb").is_dir() and (job.output_dir / "checkpoints" / "last.ckpt").exists()


def test_linear_net_is_one_override_away(run_job):
    results, _ = run_job(MF_TINY + ["problem=linear_net", "method.eps=1e-3"])
    assert results["table/converged"] == 1.0 and results["table/lo_calls"] == 0


def test_pd_sliding_toy_records_trajectory_points(run_job):
    results, job = run_job(TOY_TINY)
    assert set(results) >= {"table/gap@2", "table/gap@4", "table/comm_rounds@4", "table/gap"}
    assert results["table/gap@4"] == results["table/gap"] and results["table/gap@4"] < results["table/gap@2"]
    assert len(rows(job.output_dir / "metrics.csv")) == 5


def test_resume_after_a_crash_gives_the_uninterrupted_result(run_job, tmp_path, monkeypatch):
    overrides = TOY_TINY[:-1] + ["runner.max_steps=6", "runner.checkpoint_every=3", "runner.log_every=1"]
    clean, _ = run_job(overrides, log_dir=tmp_path / "clean")

    from methods.pd_sliding.pds import PDSlidingSolver

    real = PDSlidingSolver._iterate

    def crash_after_four(self):
        if self.step == 4:
            raise KeyboardInterrupt("simulated crash")
        real(self)

    monkeypatch.setattr(PDSlidingSolver, "_iterate", crash_after_four)
    with pytest.raises(KeyboardInterrupt):
        run_job(overrides, log_dir=tmp_path / "crash")
    monkeypatch.setattr(PDSlidingSolver, "_iterate", real)
    resumed, job = run_job(overrides, log_dir=tmp_path / "crash")
    assert resumed == {**resumed, **{k: v for k, v in clean.items() if k.startswith("table/") and "wall" not in k}}
    assert [int(r["step"]) for r in rows(job.output_dir / "metrics.csv")] == list(range(7))
    history = json.loads((job.output_dir / "run.json").read_text())["history"]
    assert [h["action"] for h in history] == ["start", "resume"]


def test_numeric_runner_needs_a_problem_and_a_solver(tmp_path):
    from reprolab.app import main

    cfg, job = compose_job(["~experiment", "runner=numeric", "method=nag_mf"], tmp_path)
    with pytest.raises(ConfigError, match=r"needs a problem: add \+problem="):
        main(cfg, job)
    cfg, job = compose_job(["~experiment", "runner=numeric", "method=adamw", "+problem=matrix_factorization"], tmp_path)
    with pytest.raises(ConfigError, match="method=adamw fills the optimizer slot, and runner=numeric has no optimizer slot"):
        main(cfg, job)
    cfg, job = compose_job(["~experiment", "runner=numeric", "+problem=matrix_factorization"], tmp_path)
    with pytest.raises(ConfigError, match="runner=numeric needs a solver: pick one with solver=<name> .one of cgs, defw"):
        main(cfg, job)


def test_bad_problem_value_fails_before_any_work(tmp_path):
    from reprolab.app import main

    cfg, job = compose_job(MF_TINY + ["problem.d=3"], tmp_path)
    with pytest.raises(ConfigError, match="problem.d=3 < problem.r=5"):
        main(cfg, job)


def test_every_numeric_experiment_composes(tmp_path):
    from reprolab.config import validate, typed
    from reprolab.registry import options

    names = [n for n in options("experiment") if n.startswith(("nag_mf", "pd_sliding"))]
    assert len(names) >= 8
    for name in names:
        cfg, _ = compose_job([f"experiment={name}"], tmp_path)
        validate(cfg)
        typed(cfg.problem)


def test_analysis_scripts_read_the_run_folders(run_job, tmp_path):
    from experiments.nag_mf import analysis as nag_analysis
    from experiments.pd_sliding import analysis as pds_analysis

    logs, out = tmp_path / "logs", tmp_path / "out"
    for algorithm in ("gd", "nag"):
        run_job(["experiment=nag_mf_kappa_sweep_ci", f"method.algorithm={algorithm}", "problem.kappa=10", "logger=csv"],
                log_dir=logs)
    run_job(["experiment=pd_sliding_toy", "runner.max_steps=10", "logger=csv"], log_dir=logs)
    nag_analysis.main(["--logs", str(logs), "--out", str(out)])
    pds_analysis.main(["--logs", str(logs), "--out", str(out)])
    table = (out / "kappa_sweep_ci_analysis.md").read_text()
    assert "| GD unbalanced c=100 d=20 | 842 |" in table and "| 20 | 100 | 10 | 842 | 97 | 8.7 |" in table
    assert "| PDS R=1 | 0.2" in (out / "toy_analysis.md").read_text() and (out / "toy_gap.png").exists()


@pytest.mark.parametrize("override,match", [("runner.budget.samples=-5", "runner.budget.samples"),
                                            ("runner.backend=mpi", "runner.backend"),
                                            ("runner.record_at=[0]", r"runner.record_at\[0\]")])
def test_bad_runner_values_are_refused(tmp_path, override, match):
    from reprolab.config import validate

    cfg, _ = compose_job(TOY_TINY + [override], tmp_path)
    with pytest.raises(ConfigError, match=match):
        validate(cfg)


def test_budget_ends_the_run(run_job):
    results, _ = run_job(TOY_TINY + ["runner.max_steps=50", "runner.log_every=1", "runner.budget.comm_rounds=40"])
    assert 40 <= results["table/comm_rounds"] < 80 and results["train/steps"] < 50
