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


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def image_tensor(img, size: int) -> torch.Tensor:
    """A PIL image -> ``(3, size, size)``: shorter side resized to ``size``, centre crop, ImageNet normalisation."""
    img = img.convert("RGB")
    w, h = img.size
    scale = size / min(w, h)
    img = img.resize((max(size, round(w * scale)), max(size, round(h * scale))))
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    x = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8).view(size, size, 3).permute(2, 0, 1).float() / 255
    return (x - torch.tensor(IMAGENET_MEAN)[:, None, None]) / torch.tensor(IMAGENET_STD)[:, None, None]


class ImageTextSource(Source):
    """Image-caption pairs streamed with ``datasets`` (CC3M as webdataset shards: ``pixparse/cc3m-wds``, or local
    shards through the ``webdataset`` builder): ``pixel_values (B, 3, S, S)``, ``input_ids`` / ``attention_mask``
    ``(B, max_len)``, ``index`` (the pair's position in the unshuffled stream, stable across epochs, for per-sample
    state) and ``epoch``. The train stream is shuffled per epoch (``shuffle_buffer``); the validation set is the
    first ``val_pairs`` pairs of ``val_split``, one batch (retrieval among themselves)."""

    kind = "contrastive"
    vocab_size = None

    def __init__(self, cfg, seed: int):
        from reprolab.data.tokenizers import build_tokenizer

        self.cfg, self.seed = cfg, seed
        self.tokenizer = build_tokenizer(cfg.tokenizer, instead="use data.tokenizer=byte offline.")

    def _stream(self, split: str):
        from reprolab import hub

        files = {k: [str(f) for f in v] for k, v in self.cfg.data_files.items()} if self.cfg.data_files else None
        return hub.load_dataset(self.cfg.hf_path, self.cfg.hf_name, split=split, data_files=files, streaming=True,
                                instead="use data=gmm_pairs (the synthetic CPU analog) or local shards "
                                "(data.hf_path=webdataset data.data_files.train=[...tar]).")

    def _text(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        L = self.cfg.max_len
        pad = getattr(self.tokenizer, "pad_id", None) or 0
        rows = [self.tokenizer.encode(c)[:L] for c in captions]
        ids = torch.tensor([r + [pad] * (L - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (L - len(r)) for r in rows])
        return ids, mask

    def _batch(self, examples: list[dict], epoch: int) -> Batch:
        ids, mask = self._text([e[self.cfg.text_field] for e in examples])
        return {"pixel_values": torch.stack([image_tensor(e[self.cfg.image_field], self.cfg.image_size) for e in examples]),
                "input_ids": ids, "attention_mask": mask, "index": torch.tensor([e["index"] for e in examples]),
                "epoch": torch.tensor(epoch)}

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        from datasets.distributed import split_dataset_by_node

        ds = self._stream(self.cfg.train_split).map(lambda e, i: {**e, "index": i}, with_indices=True)
        if world_size > 1:
            ds = split_dataset_by_node(ds, rank=rank, world_size=world_size)
        i, epoch = 0, 0
        while True:
            buf = []
            for e in ds.shuffle(seed=self.seed + epoch, buffer_size=self.cfg.shuffle_buffer):
                buf.append(e)
                if len(buf) == self.cfg.batch_size:
                    if i >= start:  # a resumed run skips the batches it has seen
                        yield self._batch(buf, epoch)
                    i, buf = i + 1, []
            if i == 0:
                raise ValueError(f"data.{self.cfg.train_split}: fewer than data.batch_size={self.cfg.batch_size} pairs.")
            epoch += 1

    def val_batches(self) -> list[Batch]:
        ds = self._stream(self.cfg.val_split).map(lambda e, i: {**e, "index": i}, with_indices=True)
        return [self._batch(list(ds.take(self.cfg.val_pairs)), 0)]
