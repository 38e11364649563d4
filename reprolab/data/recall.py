"""Synthetic long-range key:value recall: a dictionary, a list of queried keys, then the answers.

A sequence (token ids; keys and values are disjoint symbol sets)::

    BOS  k1 v1  k2 v2 ... kP vP  QUERY  q1 q2 ... qm  ANSWER  q1 v(q1)  q2 v(q2) ... qm v(qm)  EOS
    |------------------------ prompt (2P + m + 3) ------------------|  |-- answer (2m + 1) --|

The P keys of a sequence are distinct; the m queries are distinct keys of the dictionary in a
random order. Every answer token is determined by the prompt: q_{i+1} is the key that follows
q_i in the query list, v(q) the value that follows q in the dictionary. Both are copy-from-context
steps (induction heads) across up to the whole prompt, so a compressed KV cache that garbles old
tokens shows up directly as wrong answers. Training labels cover the answer only (the prompt is
random), so the best possible loss is 0 (``entropy_floor``).
"""
from __future__ import annotations

from typing import Iterator

import torch

from reprolab.data.source import Batch, Source, batch_generator

BOS, QUERY, ANSWER, EOS = 0, 1, 2, 3
N_SPECIAL = 4


class RecallTask:
    """Samples recall sequences; see the module docstring."""

    def __init__(self, num_keys: int, num_values: int, num_pairs: int, num_queries: int):
        if num_pairs > num_keys:
            raise ValueError(f"data.num_pairs={num_pairs} exceeds data.num_keys={num_keys}: the keys of a sequence are distinct.")
        if num_queries > num_pairs:
            raise ValueError(f"data.num_queries={num_queries} exceeds data.num_pairs={num_pairs}: queries are distinct dictionary keys.")
        self.K, self.V, self.P, self.m = num_keys, num_values, num_pairs, num_queries
        self.vocab_size = N_SPECIAL + num_keys + num_values
        self.prompt_len = 2 * num_pairs + num_queries + 3
        self.length = self.prompt_len + 2 * num_queries + 1

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` sequences, int64 [n, length]."""
        P, m = self.P, self.m
        keys = torch.rand(n, self.K, generator=gen).argsort(-1)[:, :P] + N_SPECIAL
        values = torch.randint(0, self.V, (n, P), generator=gen) + N_SPECIAL + self.K
        order = torch.rand(n, P, generator=gen).argsort(-1)[:, :m]
        q_keys, q_values = keys.gather(1, order), values.gather(1, order)
        col = lambda t: torch.full((n, 1), t, dtype=torch.long)  # noqa: E731
        pairs = torch.stack([keys, values], -1).flatten(1)
        answers = torch.stack([q_keys, q_values], -1).flatten(1)
        return torch.cat([col(BOS), pairs, col(QUERY), q_keys, col(ANSWER), answers, col(EOS)], 1)

    def split(self, seqs: torch.Tensor):
        """(prompts [n, prompt_len], answers [n, 2m + 1])."""
        return seqs[:, : self.prompt_len], seqs[:, self.prompt_len :]

    def score(self, answers: torch.Tensor, generated: torch.Tensor) -> dict[str, float]:
        """Value accuracy (fraction of the m values right, by position), answer exact match."""
        gen = generated[:, : answers.shape[1]]
        if gen.shape[1] < answers.shape[1]:
            pad = gen.new_full((gen.shape[0], answers.shape[1] - gen.shape[1]), -1)
            gen = torch.cat([gen, pad], 1)
        hit = gen == answers
        return {"value_acc": hit[:, 1 : 2 * self.m : 2].float().mean().item(), "exact": hit.all(1).float().mean().item()}


class RecallSource(Source):
    """The recall task as an LM source: rows padded (with EOS, unlabelled) to ``data.seq_len`` + 1."""

    entropy_floor = 0.0

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        self.task = RecallTask(cfg.num_keys, cfg.num_values, cfg.num_pairs, cfg.num_queries)
        self.vocab_size = self.task.vocab_size
        if cfg.seq_len + 1 < self.task.length:
            raise ValueError(
                f"data.seq_len={cfg.seq_len} is too short for {cfg.num_pairs} pairs and {cfg.num_queries} queries: "
                f"a sequence has {self.task.length} tokens, so set data.seq_len >= {self.task.length - 1}."
            )

    def _batch(self, seqs: torch.Tensor) -> Batch:
        T = self.cfg.seq_len + 1
        rows = torch.cat([seqs, seqs.new_full((seqs.shape[0], T - seqs.shape[1]), EOS)], 1)
        labels = rows[:, 1:].clone()
        pos = torch.arange(1, T)
        labels[:, (pos < self.task.prompt_len) | (pos >= self.task.length)] = -100
        return {"input_ids": rows[:, :-1].contiguous(), "labels": labels}

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        i = start
        while True:
            yield self._batch(self.task.sample(self.cfg.batch_size, batch_generator(self.seed, i, rank)))
            i += 1

    def val_batches(self) -> list[Batch]:
        gen = batch_generator(self.cfg.val_seed, -1 % (1 << 31), 0)  # fixed: every run scores the same set
        seqs = self.task.sample(self.cfg.val_sequences, gen)
        return [self._batch(b) for b in seqs.split(self.cfg.batch_size)]
