"""Synthetic paired "image"/"text" vectors from a Gaussian mixture, for contrastive dual encoders
(TempNet's CPU analog, ../shared/papers/tempnet.md §5).

A pair draws a cluster c (uniform over ``clusters``) and a latent z = mu_c + s_c eps (eps ~ N(0, I_latent)),
the cluster's spread s_c log-uniform in [``spread_min``, ``spread_max``]: pairs of a tight cluster are
near-duplicates (many plausible matches), pairs of a wide one are easy to tell apart. The two views
are different random non-linear maps of the same z plus independent noise:
``image = tanh(A z) + noise * e1``, ``text = tanh(B z) + noise * e2`` (A, B ~ N(0, 1/latent)).

Everything about the task (centres, spreads, maps, the pairs) is drawn from ``data_seed``; the run's
seed orders the training epochs. Training batches: ``image (B, image_dim)``, ``text (B, text_dim)``,
``index`` (the pair's id in the training set, for per-sample state such as SogCLR's moving average),
``epoch`` (the pass over the training set the batch belongs to), ``cluster``. Each epoch is a fresh
permutation (drop-last), a pure function of the batch number (a resumed run sees the same batches).
The validation set is ONE batch of ``val_pairs`` held-out pairs (retrieval ranks them all at once).
"""
from __future__ import annotations

import math
from typing import Iterator

import torch

from reprolab.data.source import Batch, Source, batch_generator


class GaussianMixturePairs:
    """The paired-data generator; ``sample(n, gen)`` -> (image, text, cluster)."""

    def __init__(self, cfg, gen: torch.Generator):
        k = cfg.latent_dim
        self.cfg = cfg
        self.centres = torch.randn(cfg.clusters, k, generator=gen) * cfg.centre_scale
        lo, hi = math.log(cfg.spread_min), math.log(cfg.spread_max)
        self.spread = torch.exp(lo + (hi - lo) * torch.rand(cfg.clusters, generator=gen))
        self.A = torch.randn(k, cfg.image_dim, generator=gen) / math.sqrt(k)
        self.B = torch.randn(k, cfg.text_dim, generator=gen) / math.sqrt(k)

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = torch.randint(0, self.cfg.clusters, (n,), generator=gen)
        z = self.centres[c] + self.spread[c, None] * torch.randn(n, self.cfg.latent_dim, generator=gen)
        image = torch.tanh(z @ self.A) + self.cfg.noise * torch.randn(n, self.cfg.image_dim, generator=gen)
        text = torch.tanh(z @ self.B) + self.cfg.noise * torch.randn(n, self.cfg.text_dim, generator=gen)
        return image, text, c


class GMMPairsSource(Source):
    kind = "contrastive"
    vocab_size = None  # a dual encoder over features has no vocabulary

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        gen = torch.Generator().manual_seed(cfg.data_seed)
        self.mixture = GaussianMixturePairs(cfg, gen)
        self.train = self.mixture.sample(cfg.n_train, gen)
        self.val = self.mixture.sample(cfg.val_pairs, gen)
        self.steps_per_epoch = cfg.n_train // cfg.batch_size

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        i = start
        while True:
            epoch, step = divmod(i, self.steps_per_epoch)
            order = torch.randperm(self.cfg.n_train, generator=batch_generator(self.seed, epoch, 0))
            shard = order[: self.steps_per_epoch * self.cfg.batch_size].view(self.steps_per_epoch, -1)[step]
            idx = shard[rank::world_size]
            image, text, cluster = (t[idx] for t in self.train)
            yield {"image": image, "text": text, "index": idx, "cluster": cluster, "epoch": torch.tensor(epoch)}
            i += 1

    def val_batches(self) -> list[Batch]:
        image, text, cluster = self.val
        return [{"image": image, "text": text, "index": torch.arange(len(image)), "cluster": cluster}]
