from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterator

import numpy as np
import torch

Batch = dict[str, torch.Tensor]


def batch_generator(seed: int, index: int, rank: int) -> torch.Generator:
    """A generator whose stream depends only on (seed, batch index, rank).

    Train batches are a pure function of their index, so a resumed run sees exactly the batches
    an uninterrupted run would have seen, with no sampler state to save.
    """
    state = np.random.SeedSequence([seed, index, rank]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def lm_batch(tokens: torch.Tensor) -> Batch:
    """Rows of T+1 tokens -> next-token batch (``labels`` are already shifted; -100 is ignored)."""
    return {"input_ids": tokens[:, :-1].contiguous(), "labels": tokens[:, 1:].contiguous()}


class Source(ABC):
    """What the runner needs from a data source. ``kind``: the batches it yields (an objective's
    ``data_kind``: ``tokens`` or ``preference``)."""

    kind: str = "tokens"
    vocab_size: int
    entropy_floor: float | None = None  # exact optimal mean loss per token, when known

    @abstractmethod
    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        """Infinite stream of train batches, beginning with batch number ``start``."""

    @abstractmethod
    def val_batches(self) -> list[Batch]:
        """The fixed validation set, batched."""
