"""Synthetic text from a random sparse Markov chain whose entropy floor is computed exactly.

A chain of order k over a vocabulary of V tokens: every context (the previous k tokens) allows
``support`` next tokens, chosen at random, with Dirichlet(``concentration``) probabilities.
Sequences start from the chain's stationary distribution, so the process is stationary and the
best possible loss at every position is known in closed form:

    label j (predicting x_j from x_0..x_{j-1}):   H(X_j | X_0..X_{j-1}) = H_{j+1} - H_j   for j < k
                                                   h (the entropy rate)                     for j >= k

where H_i is the entropy of the first i tokens (a marginal of the stationary context
distribution pi) and h = sum_c pi(c) H(P(.|c)). The runner's eval loss is the mean over the T
labels of each sequence, so its floor is (H_k - H_1 + (T - k + 1) h) / T, in nats.
``excess loss = eval loss - floor`` is then an absolute measure of how much a model has left to learn.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from reprolab.data.source import Batch, Source, batch_generator, lm_batch

MAX_CONTEXTS = 1 << 22


def _entropy(p: np.ndarray, axis=None) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=axis)


class MarkovChain:
    """The chain itself: ``next_tok[c, :]`` and ``next_prob[c, :]`` for each context id ``c``.

    A context (x_{t-k+1}, ..., x_t) has id sum_i x_{t-k+1+i} V^{k-1-i} (base V, oldest first).
    """

    def __init__(self, vocab_size: int, order: int, support: int, concentration: float, seed: int):
        if vocab_size**order > MAX_CONTEXTS:
            raise ValueError(
                f"data.vocab_size**data.order = {vocab_size}**{order} contexts is more than {MAX_CONTEXTS}; "
                "lower data.order or data.vocab_size"
            )
        if not 1 <= support <= vocab_size:
            raise ValueError(f"data.support={support} must be in [1, data.vocab_size={vocab_size}]")
        self.V, self.k, self.s = vocab_size, order, support
        self.C = vocab_size**order
        rng = np.random.default_rng(seed)
        # `support` distinct next tokens per context, and their probabilities.
        self.next_tok = np.concatenate([  # chunked so memory stays small for large V**k
            np.argpartition(rng.random((min(4096, self.C - i), vocab_size), dtype=np.float32), support - 1, axis=1)[:, :support]
            for i in range(0, self.C, 4096)
        ])
        self.next_prob = rng.dirichlet(np.full(support, concentration), size=self.C)
        self.dest = (self.next_tok + (np.arange(self.C)[:, None] % (self.C // vocab_size)) * vocab_size)  # next context ids
        self.pi = self._stationary()

    def _stationary(self, tol: float = 1e-13, max_iter: int = 200_000) -> np.ndarray:
        """Stationary distribution over contexts by lazy power iteration (converges for periodic chains too)."""
        pi = np.full(self.C, 1.0 / self.C)
        flat_dest, probs = self.dest.ravel(), self.next_prob
        for _ in range(max_iter):
            step = np.bincount(flat_dest, weights=(pi[:, None] * probs).ravel(), minlength=self.C)
            new = 0.5 * (pi + step)
            if np.abs(new - pi).sum() < tol:
                self.stationarity_error = float(np.abs(step - new).sum())
                return new
            pi = new
        raise RuntimeError(f"Markov chain stationary distribution did not converge in {max_iter} iterations")

    @property
    def entropy_rate(self) -> float:
        """h = sum_c pi(c) H(P(.|c)), nats per token."""
        return float(self.pi @ _entropy(self.next_prob, axis=1))

    def prefix_entropies(self) -> list[float]:
        """[H_1, ..., H_k]: joint entropy of the first i tokens of a stationary sequence."""
        joint = self.pi.reshape((self.V,) * self.k)
        return [float(_entropy(joint.sum(axis=tuple(range(i, self.k))))) for i in range(1, self.k + 1)]

    def floor(self, seq_len: int) -> float:
        """Exact optimal mean loss over the ``seq_len`` labels of a sequence of seq_len + 1 tokens."""
        if seq_len < self.k:
            raise ValueError(f"data.seq_len={seq_len} must be >= data.order={self.k}")
        H = self.prefix_entropies()
        return (H[-1] - H[0] + (seq_len - self.k + 1) * self.entropy_rate) / seq_len

    def sample(self, n: int, length: int, gen: torch.Generator) -> torch.Tensor:
        """``n`` stationary sequences of ``length`` tokens (int64, shape [n, length])."""
        pi = torch.from_numpy(self.pi)
        ctx = torch.multinomial(pi, n, replacement=True, generator=gen)
        digits = [(ctx // self.V ** (self.k - 1 - i)) % self.V for i in range(self.k)]  # oldest first
        out = torch.empty(n, length, dtype=torch.long)
        out[:, : self.k] = torch.stack(digits, dim=1)[:, :length]
        # Inverse-CDF sampling: one uniform per token, drawn up front; a comparison per step.
        next_tok, cum = self._torch_tables()
        u = torch.rand(n, length, generator=gen, dtype=torch.float64)
        for t in range(self.k, length):
            pick = (cum[ctx] < u[:, t : t + 1]).sum(1).clamp_(max=self.s - 1)
            tok = next_tok[ctx, pick]
            out[:, t] = tok
            ctx = (ctx % (self.C // self.V)) * self.V + tok
        return out

    def _torch_tables(self):
        if not hasattr(self, "_tables"):
            cum = torch.from_numpy(np.cumsum(self.next_prob, axis=1))
            self._tables = (torch.from_numpy(self.next_tok).long(), cum)
        return self._tables


class MarkovSource(Source):
    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        self.chain = MarkovChain(cfg.vocab_size, cfg.order, cfg.support, cfg.concentration, cfg.chain_seed)
        self.vocab_size = cfg.vocab_size
        self.entropy_floor = self.chain.floor(cfg.seq_len)

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        i = start
        while True:
            gen = batch_generator(self.seed, i, rank)
            yield lm_batch(self.chain.sample(self.cfg.batch_size, self.cfg.seq_len + 1, gen))
            i += 1

    def val_batches(self) -> list[Batch]:
        # The validation set depends on the chain only, never on the run's seed: every run of a
        # sweep is scored on the same sequences.
        gen = batch_generator(self.cfg.chain_seed, -1 % (1 << 31), 0)
        seqs = self.chain.sample(self.cfg.val_sequences, self.cfg.seq_len + 1, gen)
        return [lm_batch(b) for b in seqs.split(self.cfg.batch_size)]
