"""The COSMOS experiment configs compose and validate, the tables load (with the spec's paper
numbers), the CPU analog runs, and the benchmarks' CPU paths work."""
import re

import pytest

from reprolab.config import validate
from reprolab.registry import ROOT
from tests.conftest import TINY

PAPER_SCALE = ["cosmos_llama", "cosmos_llama_350m", "cosmos_llama_1b", "cosmos_memory", "cosmos_ablation"]
TINY_METHODS = ["adamw", "adam_mini", "galore", "muon", "soap", "cosmos"]
SPEC = ROOT.parent / "shared" / "papers" / "cosmos.md"
if not SPEC.exists():
    SPEC = ROOT.parent.parent / "shared" / "papers" / "cosmos.md"


@pytest.mark.parametrize("experiment", PAPER_SCALE)
def test_paper_scale_experiments(compose, experiment):
    cfg, _ = compose([f"experiment={experiment}"])
    objs = validate(cfg)
    assert cfg.paper == "cosmos" and cfg.trainer.precision == "bf16-mixed"
    assert objs["roles"].optimizer.weight_decay == 0.0  # §8.4
    assert cfg.data.seq_len == 1024 and cfg.data.packing
    if experiment != "cosmos_memory":  # 1024 sequences of 1024 tokens per optimizer step (§8.4)
        assert cfg.data.batch_size * cfg.trainer.accumulate_grad_batches == 1024
        assert cfg.runner.warmup_steps * 10 == cfg.trainer.max_steps  # 10% warmup (§4.2)
        assert cfg.trainer.val_check_interval == 1000 * cfg.trainer.accumulate_grad_batches


@pytest.mark.parametrize("method", TINY_METHODS)
def test_t1_sweep_points_validate(compose, method):
    """`-m experiment=cosmos_llama method=...`: every T1 method takes the experiment's settings."""
    cfg, _ = compose(["experiment=cosmos_llama", f"method={method}"])
    assert validate(cfg)["roles"].optimizer.weight_decay == 0.0


def test_main_experiment_is_cosmos_130m_c4(compose):
    cfg, job = compose(["experiment=cosmos_llama"])
    assert job.choices["method"] == "cosmos" and job.choices["model"] == "llama_130m" and job.choices["data"] == "c4_cosmos"
    assert cfg.data.hf_path == "allenai/c4" and cfg.data.tokenizer == "t5-base" and cfg.data.val_sequences == 9766
    assert cfg.trainer.max_steps == 5000 and cfg.method.rank == 64 and cfg.trainer.accelerator == "gpu"


@pytest.mark.parametrize("method, data, level", [
    *((m, "markov_v32", "mid") for m in TINY_METHODS), ("cosmos", "tinyshakespeare", "lo"), ("galore", "markov_v32", "hi"),
])
def test_tiny_sweep_points_compose(compose, method, data, level):
    cfg, _ = compose([f"experiment=cosmos_tiny/{method}", f"data={data}", f"lr_level={level}"])
    objs = validate(cfg)
    assert objs["roles"].optimizer.lr == cfg.lr_grid[level]
    assert cfg.name == f"cosmos_tiny_{method}" and cfg.data.seq_len == 64 and cfg.model.hidden_size == 64
    levels = [cfg.lr_grid[k] for k in ("lo2", "lo", "mid", "hi", "hi2")]
    assert all(b == pytest.approx(2 * a) for a, b in zip(levels, levels[1:]))


def test_tables_load():
    from experiments.tables import paper_tables

    tables = {t.name: t for t in paper_tables("cosmos")}
    assert set(tables) == {"T1", "T2", "T3", "tiny_loss", "tiny_cost", "tiny_optuna"}
    assert tables["tiny_loss"].best_of and not tables["T1"].best_of


@pytest.mark.skipif(not SPEC.exists(), reason="the spec ../shared/papers/cosmos.md is not beside the checkout")
def test_t1_paper_values_are_the_spec_table():
    """T1's paper numbers are §8.1's table, cell by cell (a transcription check)."""
    from experiments.tables import paper_tables

    t1 = next(t for t in paper_tables("cosmos") if t.name == "T1")
    section = SPEC.read_text().split("### 8.1")[1].split("###")[0]
    header = ["Adam(W)", "Adam-mini", "GaLore", "SOAP", "MUON", "COSMOS"]
    ours = {"Adam(W)": "AdamW", "Adam-mini": "Adam-mini", "GaLore": "GaLore", "SOAP": "SOAP", "MUON": "Muon",
            "COSMOS": "COSMOS"}
    rows = 0
    for line in section.splitlines():
        m = re.match(r"\| LLaMA-(\w+) \(", line)
        if not m:
            continue
        rows += 1
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")[1:]]
        for name, cell in zip(header, cells):
            expected = None if cell in ("–", "-") else float(cell)
            assert t1.paper_value(ours[name], m.group(1)) == expected, (m.group(1), name)
    assert rows == 3


def test_cosmos_tiny_runs(run_job):
    results, _ = run_job(["experiment=cosmos_tiny", "logger=csv", *TINY])
    assert results["train/steps"] == 4
    for key in ("table/best_val_loss", "table/excess_loss", "table/opt_state_bytes", "table/ms_per_step"):
        assert key in results


@pytest.mark.slow
@pytest.mark.parametrize("method", TINY_METHODS)
def test_every_tiny_method_runs(run_job, method):
    results, _ = run_job([f"experiment=cosmos_tiny/{method}", "logger=csv", *TINY])
    assert results["train/steps"] == 4


def test_cpu_benchmark_runs_and_checks_state_formulas():
    from benchmarks.cosmos_step import main

    (row,) = main(["--shapes", "40x24", "--rank", "8", "--reps", "1", "--no-write"])
    assert all(s["exact"] for s in row["state"].values())
    fp32 = {"COSMOS (fp32)/Muon (fp32)", "COSMOS (fp32)/SOAP", "Muon (fp32)/Muon"} if row["precision"] == "bf16" else set()
    assert set(row["ratios"]) == {"COSMOS/Muon", "COSMOS/SOAP", "Muon/SOAP", "COSMOS/AdamW", "COSMOS (full NS)/Muon"} | fp32
    ms = row["ms"]  # Newton-Schulz timed alone, and the rest of each step
    assert ms["COSMOS rest"] == ms["COSMOS"] - ms["NS of COSMOS"] and ms["Muon rest"] == ms["Muon"] - ms["NS of Muon"]


def test_gpu_benchmark_cpu_smoke():
    from benchmarks.gpu_cosmos import main

    kernels, qr, training = main(["--device", "cpu", "--tiny"])
    assert len(kernels) == 7  # five LLaMA-1B kernels, then batched vs one-call-each Newton-Schulz
    (row,) = qr  # the same Q up to column signs, both orthonormal
    assert row["max_abs_diff"] < 1e-4 and row["householder_orth_err"] < 1e-5 and row["cholesky_qr2_orth_err"] < 1e-5
    twins = {"AdamW", "Muon", "Muon (twin NS)", "SOAP", "COSMOS", "COSMOS (all twins)",
             "COSMOS (Householder QR)", "COSMOS (complement NS)"}  # no compiled Triton on CPU
    assert {t["optimizer"] for t in training} == twins


def test_bench_entry_point_finds_the_benchmarks():
    from benchmarks.__main__ import modules

    assert {"benchmarks.cosmos_step", "benchmarks.gpu_cosmos"} <= {m.__name__ for m in modules()}
