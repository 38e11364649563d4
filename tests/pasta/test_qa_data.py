"""QA data and metrics (`reprolab.data.qa`), highlight spans (`methods.pasta.spans`) and the recall task
with distractors (`reprolab.data.qa_recall`)."""
from __future__ import annotations

import pytest
import torch

from methods.pasta.spans import encode_segments, highlight_mask
from reprolab.data import qa
from reprolab.data.tokenizers import ByteTokenizer
from tests.conftest import SHARED_DATA, needs_shared_data


def test_squad_normalisation_em_and_f1():
    """The official SQuAD v1.1 rules: case, punctuation, articles and whitespace do not count; F1 over tokens,
    the max over the gold answers."""
    assert qa.normalize_answer("  The  Denver, Broncos! ") == "denver broncos"
    assert qa.exact_match("the Denver Broncos.", ["Denver Broncos", "Broncos"]) == 1.0
    assert qa.exact_match("Denver", ["Denver Broncos"]) == 0.0
    assert qa.f1_score("Denver", ["Denver Broncos"]) == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert qa.f1_score("Carolina Panthers", ["Denver Broncos", "the Panthers"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert qa.f1_score("", ["x"]) == 0.0
    assert qa.subspan_em("they were the Denver Broncos", ["Denver Broncos"]) == 1.0


def test_sentence_split_is_deterministic_and_keeps_abbreviations():
    text = "Dr. Smith went to the U.S. in 1990. He met J. Doe there! Was it 3 p.m.? Yes. 42 came."
    spans = qa.split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["Dr. Smith went to the U.S. in 1990.", "He met J. Doe there!",
                                             "Was it 3 p.m.?", "Yes.", "42 came."]


def test_hotpot_and_nq_swap_records():
    row = {"id": "h1", "question": "Who?", "answer": "Bob",
           "context": {"title": ["A", "B"], "sentences": [["A is x.", " A met Bob."], ["B is y."]]},
           "supporting_facts": {"title": ["A"], "sent_id": [1]}}
    r = qa.hotpot_record(row)
    assert [r.sentence(i) for i in range(3)] == ["A is x.", "A met Bob.", "B is y."]
    assert r.gold == [1] and r.context.startswith("A: A is x. A met Bob.\nB:")
    nq = qa.nq_swap_record({"question": "q", "sub_context": "One fact. The answer is Paris here.", "sub_answer": ["paris"],
                            "org_context": "", "org_answer": []}, 0)
    assert nq.gold == [1] and nq.answers == ["paris"]


@needs_shared_data
def test_squad_sample_records_and_gold_sentences():
    records = qa.squad_records(SHARED_DATA / "qa" / "squad_v1.1_dev_half_a.json")
    assert len(records) == 4961  # the file's questions (../shared/data/SOURCES.md)
    for r in records[:500]:
        a, b = r.sentences[r.gold[0]]
        assert any(ans in r.context[a:b] for ans in r.answers)


def test_spans_become_a_left_padded_mask_and_bad_spans_are_refused():
    mask = highlight_mask([[(1, 3)], None, [(0, 1), (4, 5)]], [4, 3, 5], 5)
    assert mask.int().tolist() == [[0, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 1]]
    sections = highlight_mask([[(0, 1), (4, 5)]], [5], 5, sections=True)
    assert sections.shape == (1, 2, 5) and sections[0, 1].int().tolist() == [0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="outside the prompt"):
        highlight_mask([[(3, 9)]], [5], 5)
    with pytest.raises(ValueError, match="outside the prompt"):
        highlight_mask([[(2, 2)]], [5], 5)
    with pytest.raises(ValueError, match="no span is highlighted"):
        highlight_mask([[]], [5], 5)


def test_segment_spans_decode_to_their_sentence():
    """Property 8: the token range of a highlighted substring decodes to it, starting at its first real
    token (also for a sentence at character 0 after padding)."""
    tok = ByteTokenizer()
    segments = ["Q: ", "Paris is big.", " Rome is old.", "\nA:"]
    ids, spans = encode_segments(tok, segments, [False, True, True, False])
    assert tok.decode(ids) == "".join(segments)
    assert [tok.decode(ids[a:b]) for a, b in spans] == ["Paris is big.", " Rome is old."]
    ids0, spans0 = encode_segments(tok, ["Paris.", " Q"], [True, False])
    assert spans0 == [(0, 6)]
    mask = highlight_mask([spans0], [len(ids0)], len(ids0) + 3)  # left padding: the span starts after the pads
    assert mask[0].nonzero()[0].item() == 3


def test_recall_with_distractors_examples():
    from reprolab.data.qa_recall import EQ, NOT, Q, RecallQATask

    task = RecallQATask(64, 64, 16, 16, 0.5)
    for e in task.sample(20, torch.Generator().manual_seed(0)):
        assert len(e.sentences) == 16 and e.prompt[-3] == Q and e.prompt[-1] == EQ
        key = e.prompt[-2]
        a, b = e.sentences[e.gold]
        assert e.prompt[a:b][:2] == [key, e.answer]  # the gold fact
        for i, (a, b) in enumerate(e.sentences):
            sent = e.prompt[a:b]
            if i != e.gold and key in sent:
                assert sent[0] == NOT and sent[2] != e.answer  # the only other sentences with k* are distractors
        longer = e.with_key(e.gold)
        ga, gb = e.sentences[e.gold]
        assert longer.prompt[: len(e.prompt) - 3] == e.prompt[:-3] and longer.prompt[-3:] == e.prompt[-3:]
        assert longer.prompt[len(e.prompt) - 3 : -3] == e.prompt[ga:gb]


def test_recall_questions_without_eq():
    """``eq=False``: the question is ``Q k*`` (2 tokens) and the answer follows the key; iterative prompting
    inserts the key sentence before ``Q``; the probe prompt keeps the 2-token question; a training batch
    labels exactly the answers (the token after each questioned key), as ``eq=True`` labels the token after EQ."""
    from types import SimpleNamespace

    from reprolab.data.qa_recall import EOS, EQ, Q, RecallQASource, RecallQATask
    from runners.generate.tasks.qa import RecallQA as RecallTask

    task = RecallQATask(64, 64, 16, 16, 0.5, eq=False)
    for e in task.sample(10, torch.Generator().manual_seed(1)):
        assert e.prompt[-2] == Q and EQ not in e.prompt and e.question_at == len(e.prompt) - 2
        a, b = e.sentences[e.gold]
        assert e.prompt[a:b][:2] == [e.prompt[-1], e.answer]
        longer = e.with_key(e.gold)
        assert longer.prompt == e.prompt[:-2] + e.prompt[a:b] + e.prompt[-2:]
    t = RecallTask(sentences=4, eq=False, num_examples=3)
    ex = t.examples(None)[0]
    a, b = ex.meta["sentences"][0]
    assert t.sentence_prompt(None, ex, 0) == ex.prompt[:1] + ex.prompt[a:b] + ex.prompt[-2:]
    for eq in (True, False):
        cfg = SimpleNamespace(num_keys=64, num_values=64, min_sentences=2, max_sentences=6, distractor_p=0.5,
                              questions=4, eq=eq, resample=False, seq_len=48, batch_size=32, val_seed=1, val_sequences=8)
        batch = next(RecallQASource(cfg, 0).train_batches(0, 0, 1))
        x, labels = batch["input_ids"], batch["labels"]
        if eq:
            expect = x == EQ
        else:
            expect = torch.zeros_like(x, dtype=torch.bool)
            expect[:, 1:] = x[:, :-1] == Q
        assert torch.equal(labels != -100, expect)
        nxt = torch.cat([x[:, 1:], torch.full_like(x[:, :1], EOS)], 1)
        assert torch.equal(labels[expect], nxt[expect])  # the label is the next token: the answer


def test_recall_resampled_questions():
    """``resample``: every later question asks about a fact of the context (a key may come again, with its
    own value), and every distractor negates the first question's key, as in a test example."""
    from reprolab.data.qa_recall import NOT, Q, RecallQATask

    task = RecallQATask(64, 64, 2, 6, 0.5, questions=9, eq=False, resample=True)
    gen, repeats = torch.Generator().manual_seed(2), 0
    for _ in range(50):
        e, more = task.sample_one(gen)
        facts = {e.prompt[a]: e.prompt[a + 1] for a, b in e.sentences if b - a == 3}
        assert facts[e.prompt[-1]] == e.answer
        pairs = [(more[i + 1], more[i + 2]) for i in range(0, len(more), 3)]
        assert len(pairs) == 8 and all(more[i] == Q for i in range(0, len(more), 3))
        assert all(facts[k] == v for k, v in pairs)
        repeats += len(pairs) > len({k for k, _ in pairs})
        for a, b in e.sentences:
            if e.prompt[a] == NOT:
                assert e.prompt[a + 1] == e.prompt[-1] and e.prompt[a + 2] != e.answer
    assert repeats > 25  # with replacement: keys come again
