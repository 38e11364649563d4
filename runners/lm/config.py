"""Schema of the `lm` runner: the training recipe around the method (schedule, checkpoints)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reprolab import checks
from reprolab.registry import schema
from reprolab.slots import Slot

SCHEDULES = ("constant", "cosine", "linear")


@schema("runner", "lm")
@dataclass
class LMRunner:
    """Train and evaluate a causal LM with Lightning.

    schedule: lr multiplier after warmup: ``constant``, ``cosine`` or ``linear`` decay to
      ``min_lr_ratio`` at ``trainer.max_steps`` (the GaLore/COSMOS protocol: cosine, 10% warmup,
      min_lr_ratio 0.1). warmup_steps: linear warmup from 0.
    checkpoint_every: steps between writes of ``checkpoints/last.ckpt`` (0: only at the end).
    Slots: an optimizer (AdamW when empty) over the trainable parameters, an objective (next-token
    cross-entropy when empty), and optionally an adapter, a temperature and, for evaluation after
    training, a KV cache and a steering.
    """

    slots: ClassVar[dict] = {
        "optimizer": Slot(required=True, default="adamw"),
        "objective": Slot(required=True, default="next_token"),
        "adapter": Slot(),
        "temperature": Slot(),
        "kv_cache": Slot(),
        "steering": Slot(),
    }
    _target_: str = "runners.lm.run"
    schedule: str = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    checkpoint_every: int = 100

    def __post_init__(self):
        checks.one_of("runner.schedule", self.schedule, SCHEDULES)
        checks.non_negative("runner.warmup_steps", self.warmup_steps)
        checks.in_range("runner.min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        checks.non_negative("runner.checkpoint_every", self.checkpoint_every)

    def lr_factor(self, step: int, max_steps: int) -> float:
        """Multiplier of every group's initial lr at optimizer step ``step`` (0-based)."""
        import math

        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return 1.0
        frac = min(1.0, (step - self.warmup_steps) / max(1, max_steps - self.warmup_steps))
        decay = 0.5 * (1 + math.cos(math.pi * frac)) if self.schedule == "cosine" else 1 - frac
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * decay
