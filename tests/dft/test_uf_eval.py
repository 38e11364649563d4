"""DFT's UltraFeedback evaluation (experiment=dft_uf_eval, runner=lmeval): each task at its own shot count (one
harness call per count), the harness's generation metrics (GSM8K strict-match, IFEval prompt-level strict) and the
table's Avg. (the plain mean of its seven columns), and the rows of experiments/dft/uf.yaml filled from such runs."""
from __future__ import annotations

import json

import pytest

from reprolab.checks import ConfigError
from reprolab.config import typed
from runners.lmeval import DFT_UF_COLUMNS, shot_groups, summarize

UF_TASKS = ["mmlu", "truthfulqa_mc2", "hellaswag", "winogrande", "gsm8k", "arc_challenge", "ifeval"]


def _harness_results(tasks):
    """Made-up harness results of the seven tasks, in the harness's metric keys (fractions)."""
    fake = {"mmlu": {"acc,none": 0.62}, "truthfulqa_mc2": {"acc,none": 0.5},
            "hellaswag": {"acc,none": 0.6, "acc_norm,none": 0.84}, "winogrande": {"acc,none": 0.78},
            "gsm8k": {"exact_match,strict-match": 0.45, "exact_match,flexible-extract": 0.47},
            "arc_challenge": {"acc,none": 0.6, "acc_norm,none": 0.64},
            "ifeval": {"prompt_level_strict_acc,none": 0.5, "prompt_level_loose_acc,none": 0.55,
                       "inst_level_strict_acc,none": 0.6, "inst_level_loose_acc,none": 0.65}}
    return {t: fake[t] for t in tasks}


def test_shot_groups():
    fewshot = {"mmlu": 5, "hellaswag": 10, "winogrande": 5, "gsm8k": 5, "arc_challenge": 25}
    assert shot_groups(UF_TASKS, 0, fewshot) == [(["mmlu", "winogrande", "gsm8k"], 5), (["truthfulqa_mc2", "ifeval"], 0),
                                                 (["hellaswag"], 10), (["arc_challenge"], 25)]
    assert shot_groups(["piqa", "arc_easy"], None, {}) == [(["piqa", "arc_easy"], None)]  # TempNet's: one call


def test_summarize_the_uf_columns_and_their_average():
    out = summarize(_harness_results(UF_TASKS))
    assert out["table/gsm8k"] == pytest.approx(45.0)  # strict-match, not flexible-extract
    assert out["table/ifeval_prompt_strict"] == pytest.approx(50.0) and out["table/ifeval_inst_loose"] == pytest.approx(65.0)
    assert out["table/hellaswag_norm"] == pytest.approx(84.0) and out["table/arc_challenge_norm"] == pytest.approx(64.0)
    by_hand = (62 + 50 + 84 + 78 + 45 + 64 + 50) / 7
    assert out["table/avg_dft_uf"] == pytest.approx(by_hand)
    assert len(DFT_UF_COLUMNS) == 7
    assert "table/avg_dft_uf" not in summarize(_harness_results(UF_TASKS[:-1]))  # a column missing: no average


def test_the_experiment_asks_each_task_at_its_shots(compose):
    runner = typed(compose(["experiment=dft_uf_eval"])[0].runner)
    assert list(runner.tasks) == UF_TASKS and runner.num_fewshot == 0
    assert dict(runner.fewshot) == {"mmlu": 5, "hellaswag": 10, "winogrande": 5, "gsm8k": 5, "arc_challenge": 25}
    with pytest.raises(ConfigError, match="runner.fewshot key"):
        typed(compose(["experiment=dft_uf_eval", "+runner.fewshot.piqa=3"])[0].runner)
    with pytest.raises(ConfigError, match="runner.fewshot.mmlu"):
        typed(compose(["experiment=dft_uf_eval", "runner.fewshot.mmlu=-1"])[0].runner)


def test_runs_fill_the_uf_table(run_job, monkeypatch, tmp_path):
    """The lmeval runner (the harness replaced by a recorder) writes the seven columns; the report's UF table
    reads them into the row of the run's label."""
    import reprolab.lmeval
    from experiments.report import build
    from experiments.tables import load_runs, paper_tables

    calls = []

    def fake_evaluate(model, tokenizer, tasks, device, limit=None, include_path=None, num_fewshot=None):
        calls.append((list(tasks), num_fewshot))
        return {"results": _harness_results(tasks)}

    monkeypatch.setattr(reprolab.lmeval, "evaluate", fake_evaluate)
    logs = tmp_path / "logs"
    for label in ("sft", "dft"):
        results, _ = run_job(["experiment=dft_uf_eval", f"runner.label={label}", "model=llama_tiny",
                              "model.pretrained=false", "runner.tokenizer=byte", "hardware=cpu", "runner.device=cpu",
                              "runner.dtype=float32", "logger=csv"], log_dir=logs)
    assert calls[:4] == [(["mmlu", "winogrande", "gsm8k"], 5), (["truthfulqa_mc2", "ifeval"], 0), (["hellaswag"], 10),
                         (["arc_challenge"], 25)]
    assert results["table/avg_dft_uf"] == pytest.approx((62 + 50 + 84 + 78 + 45 + 64 + 50) / 7)
    table = next(t for t in paper_tables("dft") if t.name == "uf")
    cells = build(table, load_runs(logs))
    assert cells["DFT", "GSM8K"].mean == pytest.approx(45.0) and cells["SFT", "Avg."].n == 1
    assert cells["KTO", "GSM8K"].n == 0  # no run with that label: "not run"


def _local_task(folder, name: str, n: int) -> None:
    """A local multiple-choice harness task ``name`` of ``n`` docs (few-shot examples drawn from its test split)."""
    docs = [{"question": f"Q{i}: 2 + {i} =", "choices": [f" {2 + i}", f" {i}"], "label": 0} for i in range(n)]
    (folder / f"{name}.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {folder / (name + '.jsonl')}\n"
        "test_split: test\nfewshot_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{question}}'\n"
        "doc_to_target: '{{label}}'\ndoc_to_choice: '{{choices}}'\nmetric_list:\n  - metric: acc\n")


@pytest.mark.slow  # lm-eval's task machinery takes about a minute to start
def test_the_real_harness_runs_each_task_at_its_own_shots(run_job, monkeypatch, tmp_path):
    pytest.importorskip("lm_eval", reason="lm-eval is an optional extra: pip install '.[eval]'")
    import reprolab.lmeval

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    _local_task(tasks, "tiny_zero", 3)
    _local_task(tasks, "tiny_two", 4)
    real, shots = reprolab.lmeval.evaluate, {}

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        shots.update({t: c["num_fewshot"] for t, c in out["configs"].items()})
        return out

    monkeypatch.setattr(reprolab.lmeval, "evaluate", spy)
    results, job = run_job(["~experiment", "runner=lmeval", "model=llama_tiny", "model.pretrained=false", "hardware=cpu",
                            "runner.tokenizer=byte", "runner.device=cpu", "logger=csv", "runner.label=test",
                            "runner.tasks=[tiny_zero,tiny_two]", "runner.num_fewshot=0", "+runner.fewshot.tiny_two=2",
                            f"runner.include_path={tasks}"])
    assert shots == {"tiny_zero": 0, "tiny_two": 2}
    assert 0 <= results["table/tiny_zero"] <= 100 and 0 <= results["table/tiny_two"] <= 100
    assert set(json.loads((job.output_dir / "lmeval.json").read_text())) == {"tiny_zero", "tiny_two"}
