"""A first-order Markov "teacher" with heterogeneous entropy (TempNet's CPU analog, ../shared/papers/tempnet.md
§5): over V tokens, context c's next-token distribution is softmax(u_c / T_c), u_c ~ N(0, I_V), the teacher
temperature T_c log-uniform in [t_min, t_max] (near-deterministic contexts beside near-uniform ones), so a
per-token temperature matters. Stationary sequences, the exact entropy floor, and each context's
entropy (``chain.context_entropy``) for correlating a predicted tau with it."""
from __future__ import annotations

import math

import numpy as np

from reprolab.data.markov import MarkovChain, MarkovSource, _entropy


class TeacherChain(MarkovChain):
    """`MarkovChain` of order 1 with full support: ``next_prob[c] = softmax(u_c / T_c)``."""

    def __init__(self, vocab_size: int, t_min: float, t_max: float, seed: int):
        rng = np.random.default_rng(seed)
        self.V, self.k, self.s, self.C = vocab_size, 1, vocab_size, vocab_size
        u = rng.standard_normal((vocab_size, vocab_size))
        self.teacher_tau = np.exp(rng.uniform(math.log(t_min), math.log(t_max), vocab_size))
        z = u / self.teacher_tau[:, None]
        p = np.exp(z - z.max(1, keepdims=True))
        self.next_prob = p / p.sum(1, keepdims=True)
        self.next_tok = np.tile(np.arange(vocab_size), (vocab_size, 1))
        self.dest = self.next_tok  # order 1: the next context is the next token
        self.context_entropy = _entropy(self.next_prob, axis=1)
        self.pi = self._stationary()


class MarkovTeacherSource(MarkovSource):
    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        self.chain = TeacherChain(cfg.vocab_size, cfg.t_min, cfg.t_max, cfg.chain_seed)
        self.vocab_size = cfg.vocab_size
        self.entropy_floor = self.chain.floor(cfg.seq_len)

    def train_batches(self, start: int, rank: int, world_size: int):
        if self.cfg.train_sequences is None:
            yield from super().train_batches(start, rank, world_size)
            return
        import torch

        from reprolab.data.source import batch_generator, lm_batch

        pool = self.chain.sample(self.cfg.train_sequences, self.cfg.seq_len + 1,
                                 batch_generator(self.cfg.chain_seed, 1 << 30, 0))
        per_epoch = self.cfg.train_sequences // self.cfg.batch_size
        i = start
        while True:
            epoch, step = divmod(i, per_epoch)
            order = torch.randperm(self.cfg.train_sequences, generator=batch_generator(self.seed, epoch, rank))
            yield lm_batch(pool[order[step * self.cfg.batch_size : (step + 1) * self.cfg.batch_size]])
            i += 1
