"""Associative recall with distractors: open-book QA in miniature (AutoPASTA's CPU analog,
../shared/papers/autopasta.md §5.1).

A context of N sentences, then a question; token ids::

    BOS  s_1 ... s_N  Q k* EQ  ->  v*        (``eq=False``: ``Q k*  ->  v*``)
    fact:        k v .          (3 tokens; keys distinct across facts, values distinct in a sequence)
    distractor:  NOT k* v' .    (4 tokens; the queried key, a wrong value: the answer must ignore it)

Exactly one fact holds k* (the gold sentence); each other sentence is a distractor with probability
``distractor_p``, else a fact about another key. Training sequences may ask several questions
(``questions``); labels cover the answers only.

``eq=False`` drops the EQ token, so the answer follows the queried key as the value follows it in its fact:
plain induction (the last token's own key is matched against each value's previous token). With EQ, the
last token must first copy the key from its previous position too (one more learned hop): a 2-layer,
d-64 model stays at the plateau loss log(#facts) (a context value at random) for thousands of steps
there, while without EQ it learns the binding within a few hundred (measured for AutoPASTA's analog).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from reprolab.data.source import Batch, Source, batch_generator

BOS, SEP, Q, EQ, NOT, EOS = 0, 1, 2, 3, 4, 5
N_SPECIAL = 6


@dataclass
class RecallQA:
    """One example: the prompt ids, the token span of every sentence, the gold sentence and the answer."""

    prompt: list[int]
    sentences: list[tuple[int, int]]
    gold: int
    answer: int
    question_len: int = 3  # Q k* EQ (2 without EQ)

    @property
    def question_at(self) -> int:
        return len(self.prompt) - self.question_len

    def with_key(self, i: int) -> "RecallQA":
        """Iterative prompting: sentence ``i`` repeated right before the question."""
        a, b = self.sentences[i]
        q = self.question_at
        return RecallQA(self.prompt[:q] + self.prompt[a:b] + self.prompt[q:], self.sentences, self.gold, self.answer,
                        self.question_len)


class RecallQATask:
    """Samples `RecallQA` examples with ``min_sentences``..``max_sentences`` sentences. ``questions`` > 1
    (training): the first question is the example; the sequence goes on with more questions about other
    facts (``Q k EQ v`` each, every answer labelled), and each distractor negates one of the asked keys.
    ``eq``: questions end with EQ (see the module docstring). ``resample``: the questions after the first ask
    about facts drawn with replacement (a key may come again) and the distractors negate the first question's
    key only, as at test: no elimination shortcut (the last answers as the values not yet given), which kept a
    d-64 model at a plateau loss without binding keys to values."""

    def __init__(self, num_keys: int, num_values: int, min_sentences: int, max_sentences: int, distractor_p: float,
                 questions: int = 1, eq: bool = True, resample: bool = False):
        if not 1 <= min_sentences <= max_sentences:
            raise ValueError(f"sentences: need 1 <= min_sentences={min_sentences} <= max_sentences={max_sentences}.")
        if max_sentences > num_keys or 2 * max_sentences > num_values:
            raise ValueError(f"max_sentences={max_sentences} needs num_keys >= {max_sentences} and num_values >= "
                             f"{2 * max_sentences} (distinct keys, and distinct values for facts and distractors).")
        if not 0.0 <= distractor_p < 1.0:
            raise ValueError(f"distractor_p={distractor_p} must be in [0, 1).")
        if questions < 1:
            raise ValueError(f"questions={questions} must be >= 1.")
        self.K, self.V = num_keys, num_values
        self.lo, self.hi, self.p, self.q = min_sentences, max_sentences, distractor_p, questions
        self.eq, self.resample = eq, resample
        self.vocab_size = N_SPECIAL + num_keys + num_values
        self.max_len = 1 + 4 * max_sentences + (3 + eq) * questions + 1  # context, questions with answers, EOS

    def question(self, key: int) -> list[int]:
        return [Q, key, EQ] if self.eq else [Q, key]

    def sample_one(self, gen: torch.Generator) -> tuple[RecallQA, list[int]]:
        """(the example: context and first question, the further ``Q k EQ v`` tokens of a training sequence)."""
        n = int(torch.randint(self.lo, self.hi + 1, (1,), generator=gen))
        q = 1 if self.resample else min(self.q, n)  # distinct asked keys
        keys = (torch.randperm(self.K, generator=gen)[:n] + N_SPECIAL).tolist()
        values = (torch.randperm(self.V, generator=gen)[: 2 * n] + N_SPECIAL + self.K).tolist()
        asked = torch.randperm(n, generator=gen)[:q].tolist()  # the gold sentences, in question order
        distract = (torch.rand(n, generator=gen) < self.p).tolist()
        negated = torch.randint(q, (n,), generator=gen).tolist()
        prompt, spans = [BOS], []
        for i in range(n):
            if i in asked or not distract[i]:
                sent = [keys[i], values[i], SEP]
            else:
                sent = [NOT, keys[asked[negated[i]]], values[n + i], SEP]
            spans.append((len(prompt), len(prompt) + len(sent)))
            prompt += sent
        g = asked[0]
        later = asked[1:]
        if self.resample:
            facts = [i for i in range(n) if i in asked or not distract[i]]
            later = [facts[j] for j in torch.randint(len(facts), (self.q - 1,), generator=gen).tolist()]
        more = [t for j in later for t in (*self.question(keys[j]), values[j])]
        return RecallQA(prompt + self.question(keys[g]), spans, g, values[g], 2 + self.eq), more

    def sample(self, n: int, gen: torch.Generator) -> list[RecallQA]:
        return [self.sample_one(gen)[0] for _ in range(n)]


class RecallQASource(Source):
    """The task as an LM source: ``prompt + answer + EOS`` right-padded with EOS (unlabelled) to
    ``data.seq_len`` + 1; the label is the answer token."""

    entropy_floor = 0.0

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        self.task = RecallQATask(cfg.num_keys, cfg.num_values, cfg.min_sentences, cfg.max_sentences, cfg.distractor_p,
                                 cfg.questions, cfg.eq, cfg.resample)
        self.vocab_size = self.task.vocab_size
        if cfg.seq_len + 1 < self.task.max_len:
            raise ValueError(f"data.seq_len={cfg.seq_len} is too short for {cfg.max_sentences} sentences: set "
                             f"data.seq_len >= {self.task.max_len - 1}.")

    def _batch(self, n: int, gen: torch.Generator) -> Batch:
        T = self.cfg.seq_len + 1
        rows = torch.full((n, T), EOS, dtype=torch.long)
        labels = torch.full((n, T - 1), -100, dtype=torch.long)
        step = 3 + self.task.eq  # a further question with its answer
        for i in range(n):
            e, more = self.task.sample_one(gen)
            seq = e.prompt + [e.answer] + more + [EOS]
            rows[i, : len(seq)] = torch.tensor(seq)
            for t in range(len(e.prompt), len(e.prompt) + 1 + len(more), step):  # only the answers are labelled
                labels[i, t - 1] = seq[t]
        return {"input_ids": rows[:, :-1].contiguous(), "labels": labels}

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        i = start
        while True:
            yield self._batch(self.cfg.batch_size, batch_generator(self.seed, i, rank))
            i += 1

    def val_batches(self) -> list[Batch]:
        gen = batch_generator(self.cfg.val_seed, -1 % (1 << 31), 0)
        bs, n = self.cfg.batch_size, self.cfg.val_sequences
        return [self._batch(min(bs, n - i), gen) for i in range(0, n, bs)]
