"""The generate runner, its tasks, the recall data source and the channel rescaling."""
from __future__ import annotations

import json

import pytest
import torch

from reprolab.checks import ConfigError
from reprolab.data.recall import ANSWER, BOS, EOS, RecallTask
from runners.generate.tasks import cot
from tests.conftest import TINY, needs_shared_data
from tests.gear.conftest import tiny_llama

GEN = ["~experiment", "runner=generate", "model=llama_tiny", "logger=csv", "cpu_threads=1"]
RECALL = ["runner.task.num_pairs=8", "runner.task.num_examples=3", "runner.batch_size=2"]


# ---- recall data ---------------------------------------------------------------------------------
def test_recall_sequences_and_labels():
    task = RecallTask(num_keys=10, num_values=7, num_pairs=5)
    seqs = task.sample(8, torch.Generator().manual_seed(0))
    assert seqs.shape == (8, task.length) and task.length == 4 * 5 + 3
    for s in seqs.tolist():
        keys, values = s[1:11:2], s[2:11:2]
        assert len(set(keys)) == 5 and len(set(values)) == 5 and not set(keys) & set(values)
        assert s[0] == BOS and s[11] == ANSWER and s[-1] == EOS
        assert s[12:-1] == [t for k, v in reversed(list(zip(keys, values))) for t in (k, v)]
    fwd = RecallTask(num_keys=10, num_values=7, num_pairs=5, order="forward").sample(2, torch.Generator().manual_seed(0))
    assert torch.equal(fwd[:, 12:-1], fwd[:, 1:11])  # forward: the dictionary again
    prompts, answers = task.split(seqs)
    assert task.score(answers, answers) == {"value_acc": 1.0, "exact": 1.0}
    wrong = answers.clone()
    wrong[:, 1] = 0
    assert task.score(answers, wrong)["value_acc"] == pytest.approx(0.8)


def test_recall_source_labels_only_the_answer(compose):
    from reprolab.config import typed

    cfg, _ = compose(["data=recall", "data.num_pairs=5", "data.seq_len=30", "data.batch_size=3"])
    src = typed(cfg.data).build(0)
    b = next(src.train_batches(0, 0, 1))
    assert ((b["labels"] != -100).sum(1) == 2 * 5 + 1).all() and src.entropy_floor == 0.0
    assert torch.equal(src.val_batches()[0]["input_ids"], typed(cfg.data).build(7).val_batches()[0]["input_ids"])
    bad, _ = compose(["data=recall", "data.num_pairs=5", "data.seq_len=20"])
    with pytest.raises(ConfigError, match="data.seq_len=20 is too short"):
        typed(bad.data)


# ---- answer extraction --------------------------------------------------------------------------
def test_gsm8k_extraction_follows_the_official_script():
    gold = "Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 1,072"
    assert cot.gsm8k_correct("so 1,000 + 72 = 1072. The answer is 1,072.\nQuestion: next one 5", gold) == (True, 1072.0)
    assert cot.gsm8k_correct("The answer is 7.", gold)[0] is False
    assert cot.gsm8k_correct("no number here", gold) == (False, None)
    ex = cot.gsm8k_exemplar({"question": "Q?", "answer": "a <<1+1=2>>2 b\n#### 2"})
    assert ex == "Question: Q?\nLet's think step by step\na 2 b\nThe answer is 2.\n"


def test_aqua_and_bbh_extraction():
    row = {"options": ["A)10", "B)20", "C)30", "D)40", "E)50"], "correct": "B"}
    assert cot.aqua_correct("so it is 20. The answer is B)20\nQuestion: x", row)
    assert not cot.aqua_correct("The answer is C)30", row)
    assert not cot.aqua_correct("The answer is A) B) C) D)", row)
    assert cot.bbh_extract("Let's see. So the answer is (C).", True) == "(C)"
    assert cot.bbh_extract("So the answer is True.", False) == "True"


# ---- channel rescaling ---------------------------------------------------------------------------
def test_rescaling_preserves_the_function_and_plants_outliers():
    from transformers import DynamicCache

    from runners.generate.rescale import rescale_channels

    model = tiny_llama(kv_heads=2, heads=4, hidden=64)
    ids = torch.randint(0, 64, (2, 20))
    c0 = DynamicCache(config=model.config)
    before = model(ids, cache=c0, use_cache=True).logits
    chosen = rescale_channels(model, 10.0, 2, seed=1)
    c1 = DynamicCache(config=model.config)
    after = model(ids, cache=c1, use_cache=True).logits
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    k0, k1 = c0.layers[0].keys, c1.layers[0].keys
    for h in range(2):
        ch = chosen[0][h]
        torch.testing.assert_close(k1[:, h][..., ch], 10 * k0[:, h][..., ch], rtol=1e-4, atol=1e-4)
        others = [c for c in range(16) if c not in ch.tolist()]
        torch.testing.assert_close(k1[:, h][..., others], k0[:, h][..., others], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(c1.layers[0].values[:, h][..., ch], 10 * c0.layers[0].values[:, h][..., ch], rtol=1e-4, atol=1e-4)


# ---- the runner --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["fp16", "gear", "h2o"])
def test_generate_recall_with_a_random_model(run_job, method):
    over = ["method.buffer=16", "method.group=16", "method.outlier_frac=0.01"] if method == "gear" else []
    results, job = run_job(GEN + RECALL + [f"method={method}"] + over)
    assert (job.output_dir / "metrics.csv").exists() and (job.output_dir / "results.json").exists()
    for key in ("accuracy", "accuracy_fp16", "agreement", "kl", "top1", "kv_bytes", "kv_fraction", "tokens_per_s"):
        assert f"table/{key}" in results, key
    if method == "fp16":  # the reference against itself
        assert results["table/kl"] == pytest.approx(0, abs=1e-6) and results["table/agreement"] == 1.0
        assert results["table/kv_fraction"] == 1.0
    else:
        assert results["table/kv_fraction"] < 1.0


@needs_shared_data
def test_generate_perplexity_and_gsm8k(run_job):
    results, _ = run_job(GEN + ["runner/task=perplexity", "runner.task.window=48", "runner.task.prefix=16",
                                "runner.task.num_windows=2", "method=kivi", "method.buffer=8", "method.group=8"])
    assert results["table/ppl"] > 1 and results["table/ppl_fp16"] > 1 and "table/kl" in results
    results, _ = run_job(GEN + ["runner/task=gsm8k", "runner.task.num_shots=1", "runner.task.max_examples=2",
                                "runner.task.max_new_tokens=6", "method=gear", "method.buffer=64"])
    assert 0.0 <= results["table/accuracy"] <= 1.0 and results["eval/examples"] == 2


def test_generate_from_an_lm_checkpoint(run_job, tmp_path):
    data = ["data=recall", "data.num_pairs=4", "data.seq_len=20", "data.batch_size=4",
            "data.val_sequences=8", "logger=csv", "callbacks=none"]
    _, train_job = run_job(TINY + data, log_dir=tmp_path / "train")
    results, _ = run_job(GEN + RECALL + ["method=kivi", "method.buffer=8", "method.group=8", f"runner.checkpoint='{train_job.output_dir}'"])
    assert "table/accuracy" in results
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_job(GEN + RECALL + ["method=kivi", f"runner.checkpoint={tmp_path / 'nowhere'}"])
    with pytest.raises(ValueError, match="does not fit"):
        run_job(GEN + RECALL + ["method=kivi", "model.num_layers=3", f"runner.checkpoint='{train_job.output_dir}'"])


def test_generate_needs_a_cache_method(run_job):
    with pytest.raises(ConfigError, match="method=adamw fills the optimizer slot, and runner=generate has no optimizer slot"):
        run_job(GEN + RECALL + ["method=adamw"])


def test_a_killed_evaluation_resumes_after_its_last_batch(run_job, tmp_path):
    from reprolab.rundir import RunDir

    over = GEN + RECALL + ["method=kivi", "method.buffer=8", "method.group=8"]
    full, job = run_job(over, log_dir=tmp_path / "a")
    ckpt = torch.load(job.output_dir / "checkpoints" / "last.ckpt", weights_only=False)["accumulator"]
    assert len(ckpt.rows) == 2  # 3 examples, batch 2
    # simulate a crash after the first batch: keep one batch in the checkpoint, mark the run unfinished
    ckpt.rows, ckpt.correct, ckpt.correct_ref = ckpt.rows[:1], ckpt.correct[:2], ckpt.correct_ref[:2]
    torch.save({"accumulator": ckpt}, job.output_dir / "checkpoints" / "last.ckpt")
    run = RunDir(job.output_dir)
    run.meta["status"] = "failed"
    run.save_meta()
    (job.output_dir / "results.json").unlink()
    resumed, _ = run_job(over, log_dir=tmp_path / "a")
    assert json.loads((job.output_dir / "run.json").read_text())["history"][-1]["action"] == "resume"
    assert resumed["table/accuracy"] == full["table/accuracy"] and resumed["eval/examples"] == 3
