"""A seeded synthetic preference environment with a known reward, for reward models (R3M, APS, BT).

Spec: ../shared/papers/r3m.md §5.1 (the CPU analog of the R3M robotics study). Items are segments
of ``segment_len`` steps, each step a feature vector x_t ~ N(0, I_dim); the ground-truth reward of a
step is ``r*(x) = w2^T tanh(W1^T x)`` (W1 ~ N(0, 1/dim) of shape dim x hidden, w2 ~ N(0, 1/hidden))
or, with ``truth=linear``, ``r*(x) = w^T x`` (||w|| = 1); with ``truth=tabular`` an item is one of ``dim``
items (a one-hot vector) with rewards evenly spaced in [-3, 3] (adaptive_pref §5.1 C); a segment's
reward is the sum over its steps.
The reward is rescaled so that the training margins Delta_i = r*(a_i) - r*(b_i) have unit standard
deviation (``standardize``; off: the raw r*, as in adaptive_pref §5.1 B). Clean label: a_i preferred iff Delta_i > 0.

Corruption of the *training* labels only (``corruption``; the flipped pairs are recorded):
- ``stochastic``: a_i preferred with probability sigmoid(Delta_i / temperature);
- ``myopic``: the label compares sum_t gamma^(m - t) r*(x_t) (t = 1..m; needs segment_len > 1);
- ``irrational``: in consecutive blocks of ``block`` pairs, the min(round(block^p), |block|) pairs of
  largest |Delta| are flipped (p = 1/3, 1/2, 2/3 -> 6.25 %, 12.5 %, 25 % at block 64; the last,
  partial block flips as many as a full one, as in the spec's prototype: 6.4 % at n = 2000);
- ``random``: each label flipped with probability ``flip_rate``;
- ``adversarial`` (not in the papers): the round(flip_rate * n) pairs of largest |Delta| flipped;
- ``none``: clean labels.

Everything (reward, items, labels) is drawn from ``env_seed`` (the run's seed when null). Training
batches: ``chosen_features``/``rejected_features`` ``(B, segment_len, dim)``, ``flipped``, ``pair_id``
(the pair's index in the training set), epochs over a fresh permutation each, a pure function of
the batch index (resumes see the same batches). The validation set is ONE batch (its whole-set
metrics, Pearson or AUROC, are computed in one piece): ``test_pairs`` fresh pairs with clean labels
(``chosen_features``, ..., ``true_margin`` = |Delta r*|), ``test_items`` fresh items with their true
reward (``item_features``, ``item_reward``), the bandit proxy's contexts (``bandit_features``,
``bandit_reward``: contexts x candidates) and, with ``pairing: fixed``, the training pairs as labelled
(``train_chosen_features``, ``train_rejected_features``, ``train_flipped``) for outlier identification.
With ``pairing: all_in_batch`` (adaptive_pref §5.1 B) each step trains on all pairs of batch_size
items from a pool of ``pool_items``, labelled by the true reward.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from reprolab.data.source import Batch, Source, batch_generator


class TrueReward:
    """The ground-truth reward r*(x) of one step; a segment's reward is the sum over its steps."""

    def __init__(self, dim: int, hidden: int, truth: str, gen: torch.Generator):
        self.truth = truth
        if truth == "tabular":  # item k of dim has reward -3 + 6 k / (dim - 1), evenly spaced in [-3, 3]
            self.w = torch.linspace(-3, 3, dim, dtype=torch.float64)
        elif truth == "mlp":
            self.W1 = torch.randn(dim, hidden, generator=gen, dtype=torch.float64) / math.sqrt(dim)
            self.w2 = torch.randn(hidden, generator=gen, dtype=torch.float64) / math.sqrt(hidden)
        else:
            w = torch.randn(dim, generator=gen, dtype=torch.float64)
            self.w = w / w.norm()
        self.scale = 1.0

    def steps(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., m)`` step rewards of ``(..., m, dim)`` features."""
        x = x.double()
        out = torch.tanh(x @ self.W1) @ self.w2 if self.truth == "mlp" else x @ self.w
        return self.scale * out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.steps(x).sum(-1)


def irrational_flips(delta: torch.Tensor, block: int, p: float) -> torch.Tensor:
    """In consecutive blocks of ``block`` pairs, flag the min(round(block^p), |block|) largest |delta|."""
    k = round(block**p)
    flipped = torch.zeros(delta.numel(), dtype=torch.bool)
    for start in range(0, delta.numel(), block):  # one sort per block (n / 64 blocks), not per pair
        part = delta[start : start + block].abs()
        top = torch.topk(part, min(k, part.numel())).indices
        flipped[start + top] = True
    return flipped


class PreferenceFeaturesSource(Source):
    kind = "preference_features"
    vocab_size = None  # a reward model over features has no vocabulary

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        env_seed = seed if cfg.env_seed is None else cfg.env_seed
        gen = torch.Generator().manual_seed(int(env_seed))
        self.reward = TrueReward(cfg.dim, cfg.hidden, cfg.truth, gen)
        m, d = cfg.segment_len, cfg.dim
        a, b = self.items(cfg.n_train, gen), self.items(cfg.n_train, gen)
        delta = self.reward(a) - self.reward(b)
        if cfg.standardize:  # training margins of unit std (r3m spec §5.1)
            self.reward.scale = 1.0 / float(delta.std())
        delta = delta * self.reward.scale
        clean = delta > 0
        label = self.corrupt(a, b, delta, gen)
        self.flipped = label != clean
        self.delta = delta
        self.chosen = torch.where(label[:, None, None], a, b).float()
        self.rejected = torch.where(label[:, None, None], b, a).float()
        # Fresh clean test pairs and items, from the same environment.
        ta, tb = self.items(cfg.test_pairs, gen), self.items(cfg.test_pairs, gen)
        a_wins = (self.reward(ta) > self.reward(tb))[:, None, None]
        items = self.items(cfg.test_items, gen)
        self._val = {
            "chosen_features": torch.where(a_wins, ta, tb).float(),
            "rejected_features": torch.where(a_wins, tb, ta).float(),
            "flipped": torch.zeros(cfg.test_pairs, dtype=torch.bool),
            "true_margin": (self.reward(ta) - self.reward(tb)).abs().float(),
            "item_features": items.float(),
            "item_reward": self.reward(items).float(),
        }
        # Drawn after everything above, so adding them changed none of it.
        bandit = self.items(cfg.bandit_contexts * cfg.bandit_candidates, gen).view(cfg.bandit_contexts, cfg.bandit_candidates, m, d)
        self._val.update(bandit_features=bandit.float(), bandit_reward=self.reward(bandit).float())
        if cfg.pairing == "fixed":
            self._val.update(train_chosen_features=self.chosen, train_rejected_features=self.rejected,
                             train_flipped=self.flipped)
        else:
            pool = self.items(cfg.pool_items, gen)
            self.pool, self.pool_reward = pool.float(), self.reward(pool)

    def items(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """``(n, segment_len, dim)`` item features: N(0, I) steps, or one-hot item indices (``truth: tabular``)."""
        m, d = self.cfg.segment_len, self.cfg.dim
        if self.cfg.truth == "tabular":
            which = torch.randint(0, d, (n, m), generator=gen)
            return torch.nn.functional.one_hot(which, d).double()
        return torch.randn(n, m, d, generator=gen, dtype=torch.float64)

    def corrupt(self, a, b, delta, gen) -> torch.Tensor:
        """Training labels (True: a preferred) under the configured corruption."""
        cfg = self.cfg
        clean = delta > 0
        kind = cfg.corruption
        if kind == "none":
            return clean
        if kind == "stochastic":
            return torch.rand(delta.numel(), generator=gen, dtype=torch.float64) < torch.sigmoid(delta / cfg.temperature)
        if kind == "myopic":
            m = cfg.segment_len
            weights = cfg.gamma ** torch.arange(m - 1, -1, -1, dtype=torch.float64)  # gamma^(m - t), t = 1..m
            return (self.reward.steps(a) * weights).sum(-1) > (self.reward.steps(b) * weights).sum(-1)
        if kind == "irrational":
            return clean ^ irrational_flips(delta, cfg.block, cfg.p)
        if kind == "random":
            return clean ^ (torch.rand(delta.numel(), generator=gen) < cfg.flip_rate)
        if kind == "adversarial":
            flips = torch.zeros(delta.numel(), dtype=torch.bool)
            flips[torch.topk(delta.abs(), round(cfg.flip_rate * delta.numel())).indices] = True
            return clean ^ flips
        raise ValueError(f"data.corruption={kind!r} is not one of the corruption models")

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        if self.cfg.pairing == "all_in_batch":
            yield from self._all_in_batch(start, rank, world_size)
            return
        n, bs = self.cfg.n_train, self.cfg.batch_size
        per_rank = list(range(rank, n, world_size))
        per_epoch = math.ceil(len(per_rank) / bs)
        i, order, order_epoch = start, None, None
        while True:
            epoch, j = divmod(i, per_epoch)
            if epoch != order_epoch:  # one shuffle per epoch (a step costs less than drawing it)
                order, order_epoch = torch.randperm(n, generator=batch_generator(self.seed, epoch, 0))[rank::world_size], epoch
            ids = order[j * bs : (j + 1) * bs]
            yield {"chosen_features": self.chosen[ids], "rejected_features": self.rejected[ids],
                   "flipped": self.flipped[ids], "pair_id": ids}
            i += 1

    def _all_in_batch(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        """batch_size items of the pool per step and all their pairs, the winner the larger true reward
        (the APS robotics protocol). pair_id numbers the pairs of one epoch: batch j of an epoch holds
        j * B(B-1)/2 ... (j + 1) * B(B-1)/2 - 1 (other epochs pair other items under the same ids)."""
        n, bs = self.cfg.pool_items, self.cfg.batch_size
        per_epoch = math.ceil(len(range(rank, n, world_size)) / bs)
        i = start
        while True:
            epoch, j = divmod(i, per_epoch)
            order = torch.randperm(n, generator=batch_generator(self.seed, epoch, 0))[rank::world_size]
            idx = order[j * bs : (j + 1) * bs]
            first, second = torch.triu_indices(idx.numel(), idx.numel(), 1)
            a, b = idx[first], idx[second]
            a_wins = (self.pool_reward[a] > self.pool_reward[b])[:, None, None]
            pairs = bs * (bs - 1) // 2
            yield {"chosen_features": torch.where(a_wins, self.pool[a], self.pool[b]),
                   "rejected_features": torch.where(a_wins, self.pool[b], self.pool[a]),
                   "flipped": torch.zeros(a.numel(), dtype=torch.bool),
                   "pair_id": j * pairs + torch.arange(a.numel())}
            i += 1

    def val_batches(self) -> list[Batch]:
        return [dict(self._val)]
