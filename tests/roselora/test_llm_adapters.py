"""LLM-Adapters' test-set scoring (runners/generate/tasks/llm_adapters.py), the RoseLoRA fine-tuning tables' scorer,
and the generate runner refusing the edit tasks."""
from __future__ import annotations

import json
import math

import pytest

from reprolab.checks import ConfigError
from reprolab.data.tokenizers import ByteTokenizer
from runners.generate.tasks import llm_adapters as la
from runners.generate.tasks.base import Example

SMALL = ["model.hidden_size=32", "model.intermediate_size=64", "logger=csv", "callbacks=none"]


@pytest.mark.parametrize("dataset, response, expected", [
    ("boolq", "the correct answer is false", "false"),
    ("boolq", "True, or rather false then true", "false"),  # case-sensitive, first match: the official regex
    ("piqa", "the correct answer is solution2", "solution2"),
    ("social_i_qa", "answer3 (not answer1)", "answer3"),
    ("hellaswag", "I pick ending4", "ending4"),
    ("winogrande", "option1", "option1"),
    ("ARC-Challenge", "no option here", ""),
    ("gsm8k", "She pays 3 * 4 = 12, so 1,250 - 12 = 1238.", 1238.0),
    ("SVAMP", "The answer is -2.5", -2.5),
    ("mawps", "nothing numeric", math.inf),
    ("AQuA", "  the answer is C", "C"),
    ("AQuA", "As we have (B) ...", "A"),  # the official letter regex matches any capital A-E first
])
def test_extraction_matches_the_official_rules(dataset, response, expected):
    assert la.extract(dataset, response) == expected


def test_numbers_match_within_a_thousandth_and_labels_may_be_strings():
    assert la.correct("gsm8k", "so 18.0004 dollars", "18")
    assert not la.correct("gsm8k", "so 18.002 dollars", 18)
    assert la.correct("boolq", "true", "true") and not la.correct("boolq", "True", "true")


def test_prompt_is_the_official_evaluation_template():
    p = la.prompt("Is the sky blue?")
    assert p.startswith("Below is an instruction that describes a task. Write a response")
    assert p.endswith("### Instruction:\n" + " " * 16 + "Is the sky blue?\n\n" + " " * 16 + "### Response:\n" + " " * 16)
    assert "### Input:\n" + " " * 16 + "ctx" in la.prompt("q", "ctx")


class EosBytes(ByteTokenizer):
    eos_id = 0


def _task(tmp_path, **kw):
    from runners.generate.tasks.config import LLMAdapters

    return LLMAdapters(data_dir=str(tmp_path), dir="la", **kw)


def test_score_cuts_at_eos_and_accuracy_averages_the_datasets(tmp_path):
    task = _task(tmp_path, datasets=["boolq", "gsm8k"])
    tok = EosBytes()
    gen = list(b"it is 42") + [0] + list(b" or 7")
    assert task.score(tok, Example([], target="42", meta={"dataset": "gsm8k"}), gen)["correct"] == 1.0
    assert task.is_done(tok, list(b"42") + [0]) and not task.is_done(tok, list(b"42"))
    examples = [Example([], meta={"dataset": "boolq"})] * 4 + [Example([], meta={"dataset": "gsm8k"})]
    correct = [1.0, 1.0, 1.0, 0.0, 0.0]
    assert task.breakdown(examples, correct) == {"boolq": 0.75, "gsm8k": 0.0}
    assert task.accuracy(examples, correct) == 0.375  # the tables' Avg: per dataset, not per example (0.6)


def test_bad_task_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="datasets"):
        _task(tmp_path, datasets=["boolq", "commonsense_170k"])
    with pytest.raises(ConfigError, match="empty"):
        _task(tmp_path, datasets=[])
    with pytest.raises(FileNotFoundError, match="LLM-Adapters test set not found"):
        _task(tmp_path, datasets=["piqa"]).examples(ByteTokenizer())


def _write(folder, name, records, jsonl=False):
    (folder / name).mkdir(parents=True)
    text = "\n".join(json.dumps(r) for r in records) if jsonl else json.dumps(records)
    (folder / name / "test.json").write_text(text)


def test_generate_runner_scores_a_tiny_fixture_offline(run_job, tmp_path):
    """The whole path on the byte tokenizer and a random tiny LLaMA: files read in place (JSON list and jsonl),
    every example generated and scored, per-dataset accuracies reported."""
    data = tmp_path / "data"
    _write(data / "la", "boolq", [{"instruction": "Is ice cold?", "input": "", "output": "true", "answer": "true"}] * 3)
    _write(data / "la", "gsm8k", [{"instruction": "1+1?", "answer": "2"}] * 2, jsonl=True)
    results, _ = run_job(["~experiment", "runner=generate", "runner/task=llm_adapters", "kv_cache=fp16", *SMALL,
                          f"runner.task.data_dir={data}", "runner.task.dir=la", "runner.task.datasets=[boolq,gsm8k]",
                          "runner.task.max_new_tokens=3", "runner.batch_size=2", "runner.reference=false"])
    assert results["eval/examples"] == 5
    parts = results["table/accuracy_boolq"], results["table/accuracy_gsm8k"]
    assert all(0 <= p <= 1 for p in parts) and results["table/accuracy"] == pytest.approx(sum(parts) / 2)


def test_generate_runner_refuses_edit_tasks(run_job):
    with pytest.raises(ConfigError, match="runner.task is the edit task .*runner=edit"):
        run_job(["~experiment", "runner=generate", "runner/task=edit_facts", "kv_cache=fp16", *SMALL])


def test_lm_runner_refuses_an_edit_task_as_its_eval(run_job):
    with pytest.raises(ConfigError, match="runner.eval is the edit task .*runner=edit"):
        run_job(["+runner/task@runner.eval=edit_facts", "kv_cache=fp16", "trainer.max_steps=2"])


@pytest.mark.parametrize("experiment, datasets, budget", [
    ("roselora_commonsense_llama7b", list(la.COMMONSENSE), 32),
    ("roselora_math_llama7b", ["gsm8k", "AQuA", "mawps", "SVAMP"], 256),
])
def test_paper_scale_finetuning_is_scored_on_llm_adapters_test_sets(compose, experiment, datasets, budget):
    cfg, job = compose([f"experiment={experiment}"])
    assert job.choices["kv_cache"] == "fp16"
    assert sorted(cfg.runner.eval.datasets) == sorted(datasets) and cfg.runner.eval.max_new_tokens == budget
