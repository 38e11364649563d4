"""AutoPASTA's stages (`methods.autopasta`): stage-2 mapping, coarse-to-fine profiling, the fallback to
direct prompting, iterative prompting, and whole runs of the generate runner with a steering."""
from __future__ import annotations

import json

import pytest

from methods.autopasta import AutoPASTAConfig, coarse_to_fine, map_to_sentences
from methods.autopasta.profile import select, top_heads
from reprolab.checks import ConfigError
from reprolab.data.qa import QARecord, split_sentences
from reprolab.data.tokenizers import ByteTokenizer
from runners.generate.tasks.qa import QA
from tests.conftest import needs_shared_data

SENTENCES = ["Paris is the capital of France.", "The Seine flows through Paris.", "Rome is the capital of Italy.",
             "Paris is the capital of France."]


def test_mapping_verbatim_paraphrase_and_unmappable():
    """Property 12: a verbatim key sentence maps to itself (ties: the first occurrence); a paraphrase to the
    closest sentence; an empty or unrelated output to nothing (the caller falls back to direct)."""
    assert map_to_sentences("Paris is the capital of France.", SENTENCES) == [0]
    assert map_to_sentences("the river Seine flows through the city of Paris", SENTENCES) == [1]
    assert map_to_sentences("capital: Rome, Italy", SENTENCES, top_m=2) == [0, 2] or \
        map_to_sentences("capital: Rome, Italy", SENTENCES, top_m=2) == [2, 3]
    assert map_to_sentences("", SENTENCES) is None
    assert map_to_sentences("zebra quantum banana", SENTENCES) is None


def test_coarse_to_fine_costs_l_plus_kl_h_and_finds_the_planted_heads():
    """Property 10: exactly L + K_L·H configurations are scored; with the score peaking when head (3, 5)
    (then (3, 1)) is steered, profiling ranks them first and keeps the best top-k set."""
    calls = []

    def score(heads):
        calls.append(heads)
        return sum({(3, 5): 1.0, (3, 1): 0.5, (2, 0): 0.2}.get((int(l), h), 0) for l, ids in heads.items() for h in ids) \
            - 0.15 * sum(len(ids) for ids in heads.values())

    profile = coarse_to_fine(score, num_layers=6, num_heads=8, top_layers=2)
    assert profile.evaluations == len(calls) == 6 + 2 * 8
    assert profile.ranking[:2] == [(3, 5), (3, 1)]
    assert select(profile, score, [1, 2, 4, 64]) == {"3": [1, 5]}
    assert set(profile.candidates) == {"1", "2", "4", "16"}
    assert top_heads([(1, 2), (0, 3), (1, 0)], 3) == {"1": [0, 2], "0": [3]}
    with pytest.raises(ValueError, match="top_layers"):
        coarse_to_fine(score, 6, 8, 7)


class ScriptedDecoder:
    """Stands in for the runner's `Decoder`: stage 1 'generates' the given key sentences."""

    pad, device, batch_size = 0, "cpu", 4

    def __init__(self, texts):
        self.texts = texts

    def generate(self, examples, max_new, is_done=None, steer=True):
        return [list(t.encode()) for t in self.texts]


def _qa_examples(task, tok):
    ctx = "Paris is the capital of France. The Seine flows through Paris. Rome is the capital of Italy."
    record = QARecord("r", "What flows through Paris?", ctx, split_sentences(ctx), ["The Seine"], [1])
    e = task._example(tok, record)
    return [e, task._example(tok, record)]


def test_prepare_maps_steers_and_counts_fallbacks():
    """Stage 1 output verbatim -> its sentence is highlighted; output mapping to no sentence -> the example
    is decoded as direct (no highlight) and counted; apply=append puts the sentence before the question."""
    tok, task = ByteTokenizer(), QA()
    batch = _qa_examples(task, tok)
    steering = AutoPASTAConfig(identify="prompt", heads=[[0, 0]])
    out, stats = steering.prepare(None, task, tok, batch, ScriptedDecoder(["The Seine flows through Paris.", "???"]))
    (a, b), = out[0].meta["highlight"]
    assert tok.decode(out[0].prompt[a:b]).strip() == "The Seine flows through Paris."
    assert out[1].meta["highlight"] is None and out[1].prompt == batch[1].prompt
    assert stats == {"key_precision": 0.5, "fallback": 0.5}
    iterative = AutoPASTAConfig(identify="prompt", apply="append")
    out, _ = iterative.prepare(None, task, tok, batch, ScriptedDecoder(["Seine flows through Paris", ""]))
    assert "Key sentence: The Seine flows through Paris.\n\nQuestion:" in tok.decode(out[0].prompt)
    assert out[0].meta["highlight"] is None and out[1].prompt == batch[1].prompt


def test_bad_autopasta_settings():
    with pytest.raises(ConfigError, match="method.identify"):
        AutoPASTAConfig(identify="guess")
    with pytest.raises(ConfigError, match="method.identify_head"):
        AutoPASTAConfig(identify_head=[1])
    with pytest.raises(ConfigError, match="method.alpha"):
        AutoPASTAConfig(alpha=0.0)


RECALL = ["experiment=autopasta_recall", "runner.checkpoint=null", "runner.task.num_examples=8",
          "runner.task.profile_examples=8", "runner.batch_size=8"]


def test_autopasta_run_profiles_saves_and_reuses_heads(run_job, tmp_path):
    """A whole run on the recall task (random tiny model): identify head and steered heads profiled on the
    held-out examples, saved; the saved file then serves PASTA with the oracle highlights."""
    heads = tmp_path / "heads.json"
    results, _ = run_job([*RECALL, "steering=autopasta", "steering.identify=attention", f"steering.heads_file={heads}"])
    saved = json.loads(heads.read_text())
    assert saved["profile"]["evaluations"] == 2 + 4 and saved["heads"] and len(saved["identify_head"]) == 2
    assert 0 <= results["table/key_precision"] <= 1 and results["table/fallback"] == 0
    assert results["eval/examples"] == 8
    results, _ = run_job([*RECALL, "steering=pasta", f"steering.heads_file={heads}", "name=oracle"])
    assert 0 <= results["table/accuracy"] <= 1


def test_pasta_with_a_gear_cache_decodes(run_job):
    """`steering=pasta kv_cache=gear`: the steering and the compressing cache in the one attention hook,
    decoding several tokens over the compressed cache (lockstep with the fp16 reference, both steered)."""
    results, job = run_job([*RECALL, "steering=pasta", "steering.heads=[[1,0],[1,2]]", "kv_cache=gear",
                            "kv_cache.buffer=16", "kv_cache.group=16", "runner.reference=true",
                            "runner.task.max_new_tokens=6", "runner.task.sentences=20"])
    assert results["table/kv_fraction"] < 1 and 0 <= results["table/top1"] <= 1
    config = (job.output_dir / "config.yaml").read_text()
    assert "steering:" in config and "kv_cache:" in config


@pytest.mark.slow
@needs_shared_data
def test_squad_run_reports_em_f1_and_fallbacks(run_job):
    results, _ = run_job(["~experiment", "runner=generate", "runner/task=qa_squad", "kv_cache=fp16", "runner.reference=false",
                          "runner.tokenizer=byte", "runner.task.max_examples=3", "runner.task.max_new_tokens=3",
                          "runner.batch_size=3", "steering=autopasta", "steering.heads=[[0,1]]", "steering.key_tokens=8"])
    for key in ("table/exact", "table/f1", "table/key_precision", "table/fallback"):
        assert 0 <= results[key] <= 1


def test_probe_identification_picks_the_sentence_the_model_answers_from_alone():
    """identify=probe: each sentence alone is a prompt; the most confident one is the key sentence. A model
    that is confident exactly when the gold fact is in its context finds the gold sentence every time."""
    import torch

    from methods.autopasta.identify import probe_choice
    from reprolab.data.qa_recall import RecallQATask
    from runners.generate.tasks.qa import RecallQA, _recall_example

    task = RecallQA(sentences=8)
    batch = [_recall_example(r) for r in RecallQATask(64, 64, 8, 8, 0.5).sample(6, torch.Generator().manual_seed(1))]

    class Oracle(torch.nn.Module):  # logits peaked on the answer when the prompt holds the gold fact
        def forward(self, input_ids, attention_mask, position_ids):
            out = torch.zeros(input_ids.shape[0], input_ids.shape[1], task.own_vocab)
            for i, row in enumerate(input_ids.tolist()):
                key = row[-2]
                answer = next(e.target for e in batch if e.prompt[-2] == key)
                if answer in row and row[row.index(answer) - 1] == key:
                    out[i, -1, answer] = 10.0
            return type("Out", (), {"logits": out})

    chosen = probe_choice(Oracle(), task, None, batch, 0, "cpu", batch_size=16)
    assert chosen == [e.meta["gold"][0] for e in batch]
    assert task.sentence_prompt(None, batch[0], 0)[-3:] == batch[0].prompt[-3:]
