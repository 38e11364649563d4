"""Open-book QA data for the `generate` runner's QA tasks: records with sentence spans and the gold
(supporting) sentences, the standard SQuAD answer normalisation, exact match and token F1.

Sources (one record format, `QARecord`): the official SQuAD v1.1 JSON (``../shared/data/qa``, read in
place), NQ-Swap (HF ``pminervini/NQ-Swap``, split ``dev``: ``org_context`` = Natural Questions,
``sub_context`` = its entity-substituted counterfactual) and HotpotQA distractor (HF
``hotpotqa/hotpot_qa``, config ``distractor``: 10 paragraphs, ``supporting_facts`` name the gold sentences).
"""
from __future__ import annotations

import collections
import json
import re
import string
from dataclasses import dataclass, field
from pathlib import Path

# ----------------------------------------------------------------------------------------------
# Metrics: the official SQuAD v1.1 evaluation script's normalisation, EM and F1 (max over golds).


def normalize_answer(s: str) -> str:
    """Lower-case, drop punctuation, the articles a/an/the and extra whitespace (SQuAD v1.1)."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, golds: list[str]) -> float:
    return float(max(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def f1_score(prediction: str, golds: list[str]) -> float:
    return max(_f1(prediction, g) for g in golds)


def _f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = collections.Counter(pred) & collections.Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


def subspan_em(prediction: str, golds: list[str]) -> float:
    """1 when a normalised gold answer occurs inside the normalised prediction ("contains the answer")."""
    pred = normalize_answer(prediction)
    return float(any(normalize_answer(g) in pred for g in golds))


# ----------------------------------------------------------------------------------------------
# Sentences.

_ABBREV = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "no", "prof", "inc", "ltd", "co", "corp", "mt", "ft", "approx",
           "fig", "e.g", "i.e", "etc", "u.s", "u.k", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept",
           "oct", "nov", "dec", "gen", "col", "gov", "sen", "rep", "rev", "ca"}
_BOUNDARY = re.compile(r"[.!?][\"')\]]*(?=\s+[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character spans ``[start, end)`` of the sentences of ``text`` (deterministic rule: a sentence ends at
    . ! ? followed by whitespace and a capital or a digit, unless the word before is a known
    abbreviation or a single letter, an initial). Whitespace between sentences belongs to neither."""
    spans, start = [], 0
    for m in _BOUNDARY.finditer(text):
        word = re.search(r"(\S+)$", text[start : m.start()])
        w = word.group(1).lower().rstrip(".") if word else ""
        if text[m.start()] == "." and (w in _ABBREV or (len(w) == 1 and w.isalpha())):
            continue
        spans.append((start, m.end()))
        start = m.end() + len(text[m.end():]) - len(text[m.end():].lstrip())
    if start < len(text.rstrip()):
        spans.append((start, len(text.rstrip())))
    return spans


# ----------------------------------------------------------------------------------------------
# Records.


@dataclass
class QARecord:
    """One question over one context. ``sentences``: char spans of the context's sentences; ``gold``:
    indices of the sentences that support the answer (empty: unknown, no oracle highlight)."""

    id: str
    question: str
    context: str
    sentences: list[tuple[int, int]]
    answers: list[str]
    gold: list[int] = field(default_factory=list)

    def sentence(self, i: int) -> str:
        a, b = self.sentences[i]
        return self.context[a:b]


def _containing(spans: list[tuple[int, int]], pos: int) -> list[int]:
    return [i for i, (a, b) in enumerate(spans) if a <= pos < b][:1]


def squad_records(path: Path) -> list[QARecord]:
    """The official SQuAD v1.1 JSON: the gold sentence is the one holding the first answer's start."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    out = []
    for article in data:
        for para in article["paragraphs"]:
            ctx = para["context"]
            spans = split_sentences(ctx)
            for qa in para["qas"]:
                answers = [a["text"] for a in qa["answers"]]
                out.append(QARecord(qa["id"], qa["question"], ctx, spans, answers,
                                    _containing(spans, qa["answers"][0]["answer_start"])))
    return out


def nq_swap_record(row: dict, i: int, context: str = "sub") -> QARecord:
    """An NQ-Swap row (``org_*``: the NQ original, ``sub_*``: the substituted counterfactual); the gold
    sentence holds the first occurrence of an answer (case-insensitive)."""
    ctx, answers = row[f"{context}_context"], list(row[f"{context}_answer"])
    spans = split_sentences(ctx)
    low = ctx.lower()
    hits = [low.find(a.lower()) for a in answers if a and low.find(a.lower()) >= 0]
    return QARecord(f"nqswap-{i}", row["question"], ctx, spans, answers, _containing(spans, min(hits)) if hits else [])


def hotpot_record(row: dict) -> QARecord:
    """A HotpotQA distractor row: paragraphs ``title: sentence sentence ...`` one per line; the gold
    sentences are the ``supporting_facts``."""
    parts, spans, index, pos = [], [], {}, 0
    for title, sents in zip(row["context"]["title"], row["context"]["sentences"]):
        head = f"{title}:"
        parts.append(head)
        pos += len(head)
        for j, s in enumerate(sents):
            s = s.strip()
            if not s:
                continue
            parts.append(" " + s)
            index[(title, j)] = len(spans)
            spans.append((pos + 1, pos + 1 + len(s)))
            pos += 1 + len(s)
        parts.append("\n")
        pos += 1
    sf = row["supporting_facts"]
    gold = sorted({index[(t, j)] for t, j in zip(sf["title"], sf["sent_id"]) if (t, j) in index})
    return QARecord(row["id"], row["question"], "".join(parts).rstrip("\n"), spans, [row["answer"]], gold)
