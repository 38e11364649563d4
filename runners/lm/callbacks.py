from __future__ import annotations

import time

import lightning as L
import torch


def scored_tokens(batch: dict) -> int:
    """Tokens with a label (!= -100) in a batch of any kind (``labels``, ``chosen_labels``, ...)."""
    return sum(int((v != -100).sum()) for k, v in batch.items() if k.endswith("labels"))


class Throughput(L.Callback):
    """Tokens/s and ms/step of the training steps (forward, backward, optimizer step).

    The first ``skip`` steps of each fit (allocator and kernel warm-up) are left out. Time spent in
    validation and checkpointing is not counted. Logged as ``train/tokens_per_s``.
    """

    def __init__(self, skip: int = 3):
        self.skip = skip
        self.reset()

    def reset(self):
        self.steps = self.tokens = 0
        self.seconds = 0.0
        self._seen = 0

    def on_train_start(self, trainer, pl_module):
        self.reset()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - self._t0
        self._seen += 1
        if self._seen <= self.skip:
            return
        self.steps += 1
        self.seconds += dt
        self.tokens += scored_tokens(batch) * trainer.world_size
        if self.seconds > 0:
            pl_module.log("train/tokens_per_s", self.tokens / self.seconds, on_step=True, on_epoch=False)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")

    def ms_per_step(self, accumulate: int = 1) -> float:
        """Milliseconds per optimizer step (``accumulate`` micro-batches each)."""
        return 1000 * self.seconds * accumulate / self.steps if self.steps else float("nan")
