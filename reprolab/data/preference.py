"""A seeded preference task with a known reward, for the DPO family on the tiny LLaMA.

The "true" language is a sparse Markov chain (`reprolab.data.markov`). A pair shares a prompt of
``prompt_len`` tokens; the chosen response continues it along the chain, the rejected one is the
same continuation with each token replaced, with probability ``noise``, by a uniform random token
(mostly a transition the chain never makes). The known reward of a response is its log-likelihood
under the chain, so the chosen response is the better one; a fraction ``flip`` of the pairs have
their labels swapped (label noise, recorded per pair in ``flipped``).

Batches (`preference_batch`): ``chosen_input_ids``/``chosen_labels`` and the ``rejected_`` twins,
labels pre-shifted and -100 on the prompt, so a sequence's log-likelihood under a model is the sum
over its response tokens. Training batches carry ``pair_id``: every pair of the (endless) stream has
its own number, the same in a resumed run, for objectives with per-pair state (R3M's delta).
"""
from __future__ import annotations

from typing import Iterator

import torch

from reprolab.data.markov import MarkovChain
from reprolab.data.source import Batch, Source, batch_generator


def preference_batch(prompt_len: int, chosen: torch.Tensor, rejected: torch.Tensor, flipped: torch.Tensor,
                     pair_id: torch.Tensor | None = None) -> Batch:
    """Rows of prompt + response tokens -> the pairwise batch (labels -100 on the prompt)."""
    if flipped.any():
        chosen, rejected = torch.where(flipped[:, None], rejected, chosen), torch.where(flipped[:, None], chosen, rejected)
    out = {"flipped": flipped}
    if pair_id is not None:
        out["pair_id"] = pair_id
    for name, seq in (("chosen", chosen), ("rejected", rejected)):
        labels = seq[:, 1:].clone()
        labels[:, : prompt_len - 1] = -100
        out[f"{name}_input_ids"], out[f"{name}_labels"] = seq[:, :-1].contiguous(), labels
    return out


class PreferenceMarkovSource(Source):
    kind = "preference"

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        self.chain = MarkovChain(cfg.vocab_size, cfg.order, cfg.support, cfg.concentration, cfg.chain_seed)
        self.vocab_size = cfg.vocab_size

    def pairs(self, n: int, gen: torch.Generator, flip: float | None = None, first_id: int | None = None) -> Batch:
        cfg = self.cfg
        flip = cfg.flip if flip is None else flip
        chosen = self.chain.sample(n, cfg.prompt_len + cfg.response_len, gen)
        replace = torch.rand(n, cfg.response_len, generator=gen) < cfg.noise
        random = torch.randint(0, cfg.vocab_size, (n, cfg.response_len), generator=gen)
        rejected = chosen.clone()
        rejected[:, cfg.prompt_len:] = torch.where(replace, random, chosen[:, cfg.prompt_len:])
        flipped = torch.rand(n, generator=gen) < flip
        ids = None if first_id is None else torch.arange(first_id, first_id + n)
        return preference_batch(cfg.prompt_len, chosen, rejected, flipped, ids)

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        i = start
        bs = self.cfg.batch_size
        while True:  # pair_id: the pair's place in the stream of all ranks, stable across resumes
            yield self.pairs(bs, batch_generator(self.seed, i, rank), first_id=(i * world_size + rank) * bs)
            i += 1

    def val_batches(self) -> list[Batch]:
        # Clean labels, fixed by the chain: every run of a sweep is scored on the same pairs.
        pairs = self.pairs(self.cfg.val_pairs, batch_generator(self.cfg.chain_seed, -1 % (1 << 31), 0), flip=0.0)
        n = self.cfg.val_pairs
        bs = self.cfg.batch_size
        return [{k: v[i : i + bs] for k, v in pairs.items()} for i in range(0, n, bs)]
