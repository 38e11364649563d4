"""Synthetic long-range key:value recall: a dictionary of pairs, then every pair recalled.

A sequence (token ids; keys and values are disjoint symbol sets, all distinct within a sequence),
``order="reverse"``::

    BOS  k1 v1  k2 v2 ... kP vP  ANSWER  kP vP  k(P-1) v(P-1) ... k1 v1  EOS
    |-------- prompt (2P + 2) --------|  |---------- answer (2P + 1) --------|

Every answer token is fixed by the prompt, and each is a lookup of one specific old token. In
reverse order, after key k_i comes its value v_i (find k_i in the dictionary, copy the next token)
and after v_i comes k_(i-1) (find v_i, copy the token three places before it): content-addressed
(induction-style) lookups, and the oldest pairs, which a streaming cache compressed first, are
recalled last. ``order="forward"`` recalls k1 v1 ... kP vP: every answer token sits a fixed
distance (2P + 1) behind in the prompt, so it can also be found by position (a RoPE-relative
lookup across the whole prompt), which a tiny model learns much faster on CPU. Training labels
cover the answer only (the prompt is random), so the best possible loss is 0 (``entropy_floor``).
"""
from __future__ import annotations

from typing import Iterator

import torch

from reprolab.data.source import Batch, Source, batch_generator

BOS, ANSWER, EOS = 0, 1, 2
N_SPECIAL = 3
ORDERS = ("reverse", "forward")


class RecallTask:
    """Samples recall sequences; see the module docstring."""

    def __init__(self, num_keys: int, num_values: int, num_pairs: int, order: str = "reverse"):
        if order not in ORDERS:
            raise ValueError(f"order={order!r} is not one of {list(ORDERS)}.")
        if num_pairs > min(num_keys, num_values):
            raise ValueError(f"data.num_pairs={num_pairs} exceeds min(data.num_keys, data.num_values) = "
                             f"{min(num_keys, num_values)}: the keys and the values of a sequence are distinct.")
        self.K, self.V, self.P, self.order = num_keys, num_values, num_pairs, order
        self.vocab_size = N_SPECIAL + num_keys + num_values
        self.prompt_len = 2 * num_pairs + 2
        self.length = 4 * num_pairs + 3

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` sequences, int64 [n, length]."""
        P = self.P
        keys = torch.rand(n, self.K, generator=gen).argsort(-1)[:, :P] + N_SPECIAL
        values = torch.rand(n, self.V, generator=gen).argsort(-1)[:, :P] + N_SPECIAL + self.K
        pairs = torch.stack([keys, values], -1)  # [n, P, 2]
        col = lambda t: torch.full((n, 1), t, dtype=torch.long)  # noqa: E731
        answer = pairs.flip(1) if self.order == "reverse" else pairs
        return torch.cat([col(BOS), pairs.flatten(1), col(ANSWER), answer.flatten(1), col(EOS)], 1)

    def split(self, seqs: torch.Tensor):
        """(prompts [n, prompt_len], answers [n, 2P + 1])."""
        return seqs[:, : self.prompt_len], seqs[:, self.prompt_len :]

    def score(self, answers: torch.Tensor, generated: torch.Tensor) -> dict[str, float]:
        """Value accuracy (fraction of the P values right, by position) and answer exact match."""
        gen = generated[:, : answers.shape[1]]
        if gen.shape[1] < answers.shape[1]:
            gen = torch.cat([gen, gen.new_full((gen.shape[0], answers.shape[1] - gen.shape[1]), -1)], 1)
        hit = gen == answers
        return {"value_acc": hit[:, 1 : 2 * self.P : 2].float().mean().item(), "exact": hit.all(1).float().mean().item()}


class RecallSource(Source):
    """The recall task as an LM source: rows padded (with EOS, unlabelled) to ``data.seq_len`` + 1."""

    entropy_floor = 0.0

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        self.task = RecallTask(cfg.num_keys, cfg.num_values, cfg.num_pairs, cfg.order)
        self.vocab_size = self.task.vocab_size
        if cfg.seq_len + 1 < self.task.length:
            raise ValueError(f"data.seq_len={cfg.seq_len} is too short for {cfg.num_pairs} pairs: a sequence has "
                             f"{self.task.length} tokens, so set data.seq_len >= {self.task.length - 1}.")

    def _batch(self, seqs: torch.Tensor) -> Batch:
        T = self.cfg.seq_len + 1
        rows = torch.cat([seqs, seqs.new_full((seqs.shape[0], T - seqs.shape[1]), EOS)], 1)
        labels = rows[:, 1:].clone()
        pos = torch.arange(1, T)  # the position each label predicts
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
