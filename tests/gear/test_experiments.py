"""Smoke runs of every GEAR experiment file (conf/experiment/gear_*.yaml) with tiny overrides, and the
table definitions they fill."""
from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from reprolab.registry import CONF_DIR
from tests.conftest import TINY, needs_shared_data

PAPER_SCALE = sorted(p.stem for p in CONF_DIR.glob("experiment/gear_*bit.yaml") if not p.stem.startswith("gear_recall"))
RECALL_EVAL = ["gear_recall_ref", "gear_recall_2bit", "gear_recall_4bit", "gear_recall_rank", "gear_recall_buffer"]
TINY_MODEL = ["model=llama_tiny", "model.pretrained=false"]


def test_the_experiment_files_are_the_ones_tested():
    found = {p.stem for p in CONF_DIR.glob("experiment/gear_*.yaml")}
    assert found == set(PAPER_SCALE) | set(RECALL_EVAL) | {"gear_recall_train"}
    assert len(PAPER_SCALE) == 8  # 4 models x {2, 4} bits


@pytest.mark.parametrize("name", PAPER_SCALE)
def test_paper_scale_file_composes_with_the_paper_settings(compose, name):
    cfg, job = compose([f"experiment={name}"])
    assert cfg.model.pretrained and cfg.model.hf_id and cfg.runner.dtype == "float16"
    assert cfg.runner.task.num_shots == 8 and cfg.runner.task.max_new_tokens == 256 and cfg.runner.task.batch_size == 6
    m = cfg.method
    if name.endswith("2bit"):
        assert (m.backbone, m.bits, m.group, m.buffer, m.outlier_frac, m.rank_prefill, m.rank_decode, m.loops) == (
            "kivi", 2, 64, 64, 0.02, 4, 2, 3)
    else:
        assert (m.backbone, m.bits, m.buffer, m.outlier_frac) == ("kcvt", 4, 64, 0.02)
    for task, batch, new in [("aqua", 6, 196), ("bbh", 4, 256)]:
        cfg, _ = compose([f"experiment={name}", f"runner/task={task}"])
        assert (cfg.runner.task.batch_size, cfg.runner.task.max_new_tokens, cfg.runner.task.source) == (batch, new, "hf")
    params = OmegaConf.load(CONF_DIR / "experiment" / f"{name}.yaml").hydra.sweeper.params
    assert params["runner/task"] == "gsm8k,aqua,bbh" and params["runner.task.source"] == "hf"  # HF data at paper scale


@needs_shared_data
@pytest.mark.parametrize("name", [n for n in PAPER_SCALE if n.startswith("gear_llama3")])
def test_paper_scale_file_runs_tiny(run_job, name):
    results, _ = run_job([f"experiment={name}", *TINY_MODEL, "runner.device=cpu", "runner.dtype=float32", "cpu_threads=1",
                          "runner.task.num_shots=1", "runner.task.max_examples=1",
                          "runner.task.max_new_tokens=3"])
    assert "table/accuracy" in results and "table/kv_fraction" in results


@pytest.mark.slow  # tests/test_runs.py smoke-runs every file with a random model; this one uses a trained checkpoint
def test_recall_train_then_every_eval_file(run_job, tmp_path):
    data = ["data.num_pairs=4", "data.seq_len=18", "data.batch_size=4", "data.val_sequences=8"]
    _, train = run_job(["experiment=gear_recall_train", *TINY, *data, "logger=csv"], log_dir=tmp_path / "train")
    for name in RECALL_EVAL:
        results, _ = run_job([f"experiment={name}", f"runner.checkpoint='{train.output_dir}'", "runner.task.num_pairs=4",
                              "runner.task.num_examples=2", "runner.batch_size=2", "logger=csv"])
        assert {"table/accuracy", "table/agreement", "table/kl", "table/kv_fraction"} <= set(results), name


def test_gear_tables_load_and_name_existing_runs():
    from experiments.tables import paper_tables

    names = {t.name: t for t in paper_tables("gear")}
    assert {"recall", "recall_rank", "recall_buffer"} <= set(names)
    experiments = {p.stem for p in CONF_DIR.glob("experiment/gear_*.yaml")}
    for t in names.values():
        assert set(t.runs) <= experiments, t.name
        assert not t.paper_values  # no table cell of the paper could be verified (spec §4.2, §8)
