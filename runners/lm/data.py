from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, IterableDataset


class _TrainStream(IterableDataset):
    def __init__(self, source, start: int, rank: int, world_size: int):
        self.source, self.start, self.rank, self.world_size = source, start, rank, world_size

    def __iter__(self):
        return self.source.train_batches(self.start, self.rank, self.world_size)


class LMDataModule(L.LightningDataModule):
    """Serves any `reprolab.data.source.Source`.

    The train stream starts at the number of batches already consumed (``global_step`` x
    gradient accumulation), which Lightning has restored from ``last.ckpt`` before it asks for the
    loader, so a resumed run sees the same batches as an uninterrupted one.
    """

    def __init__(self, source):
        super().__init__()
        self.source = source
        self._val = None

    def train_dataloader(self):
        t = self.trainer
        start = t.global_step * t.accumulate_grad_batches
        return DataLoader(_TrainStream(self.source, start, t.global_rank, t.world_size), batch_size=None)

    def val_dataloader(self):
        if self._val is None:
            self._val = self.source.val_batches()
        t = self.trainer
        shard = self._val[t.global_rank :: t.world_size] if t is not None and t.world_size > 1 else self._val
        return DataLoader(shard, batch_size=None)
