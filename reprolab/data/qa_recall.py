"""Associative recall with distractors: open-book QA in miniature (AutoPASTA's CPU analog,
../shared/papers/autopasta.md §5.1).

A context of N sentences, then a question; token ids::

    BOS  s_1 ... s_N  Q k* EQ  ->  v*
    fact:        k v .          (3 tokens; keys distinct across facts, values distinct in a sequence)
    distractor:  NOT k* v' .    (4 tokens; the queried key, a wrong value: the answer must ignore it)

Exactly one fact holds k* (the gold sentence); each other sentence is a distractor with probability
``distractor_p``, else a fact about another key. Training labels cover the answer only.
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

    @property
    def question_at(self) -> int:
        return len(self.prompt) - 3  # Q k* EQ

    def with_key(self, i: int) -> "RecallQA":
        """Iterative prompting: sentence ``i`` repeated right before the question."""
        a, b = self.sentences[i]
        q = self.question_at
        return RecallQA(self.prompt[:q] + self.prompt[a:b] + self.prompt[q:], self.sentences, self.gold, self.answer)


class RecallQATask:
    """Samples `RecallQA` examples with ``min_sentences``..``max_sentences`` sentences."""

    def __init__(self, num_keys: int, num_values: int, min_sentences: int, max_sentences: int, distractor_p: float):
        if not 1 <= min_sentences <= max_sentences:
            raise ValueError(f"sentences: need 1 <= min_sentences={min_sentences} <= max_sentences={max_sentences}.")
        if max_sentences > min(num_keys, num_values):
            raise ValueError(f"max_sentences={max_sentences} exceeds min(num_keys, num_values) = "
                             f"{min(num_keys, num_values)}: keys and values of a sequence are distinct.")
        if not 0.0 <= distractor_p < 1.0:
            raise ValueError(f"distractor_p={distractor_p} must be in [0, 1).")
        self.K, self.V = num_keys, num_values
        self.lo, self.hi, self.p = min_sentences, max_sentences, distractor_p
        self.vocab_size = N_SPECIAL + num_keys + num_values
        self.max_len = 1 + 4 * max_sentences + 3 + 2  # the longest sequence with its answer and EOS

    def sample_one(self, gen: torch.Generator) -> RecallQA:
        n = int(torch.randint(self.lo, self.hi + 1, (1,), generator=gen))
        keys = (torch.randperm(self.K, generator=gen)[:n] + N_SPECIAL).tolist()
        values = (torch.randperm(self.V, generator=gen)[:n] + N_SPECIAL + self.K).tolist()
        distract = (torch.rand(n, generator=gen) < self.p).tolist()
        gold = int(torch.randint(n, (1,), generator=gen))
        prompt, spans = [BOS], []
        for i in range(n):
            if i == gold:
                sent = [keys[0], values[0], SEP]
            elif distract[i]:
                sent = [NOT, keys[0], values[i], SEP]
            else:
                sent = [keys[i], values[i], SEP]
            spans.append((len(prompt), len(prompt) + len(sent)))
            prompt += sent
        return RecallQA(prompt + [Q, keys[0], EQ], spans, gold, values[0])

    def sample(self, n: int, gen: torch.Generator) -> list[RecallQA]:
        return [self.sample_one(gen) for _ in range(n)]


class RecallQASource(Source):
    """The task as an LM source: ``prompt + answer + EOS`` right-padded with EOS (unlabelled) to
    ``data.seq_len`` + 1; the label is the answer token."""

    entropy_floor = 0.0

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        self.task = RecallQATask(cfg.num_keys, cfg.num_values, cfg.min_sentences, cfg.max_sentences, cfg.distractor_p)
        self.vocab_size = self.task.vocab_size
        if cfg.seq_len + 1 < self.task.max_len:
            raise ValueError(f"data.seq_len={cfg.seq_len} is too short for {cfg.max_sentences} sentences: set "
                             f"data.seq_len >= {self.task.max_len - 1}.")

    def _batch(self, examples: list[RecallQA]) -> Batch:
        T = self.cfg.seq_len + 1
        rows = torch.full((len(examples), T), EOS, dtype=torch.long)
        labels = torch.full((len(examples), T - 1), -100, dtype=torch.long)
        for i, e in enumerate(examples):
            seq = e.prompt + [e.answer, EOS]
            rows[i, : len(seq)] = torch.tensor(seq)
            labels[i, len(e.prompt) - 1] = e.answer
        return {"input_ids": rows[:, :-1].contiguous(), "labels": labels}

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        i = start
        while True:
            yield self._batch(self.task.sample(self.cfg.batch_size, batch_generator(self.seed, i, rank)))
            i += 1

    def val_batches(self) -> list[Batch]:
        gen = batch_generator(self.cfg.val_seed, -1 % (1 << 31), 0)
        examples = self.task.sample(self.cfg.val_sequences, gen)
        bs = self.cfg.batch_size
        return [self._batch(examples[i : i + bs]) for i in range(0, len(examples), bs)]
