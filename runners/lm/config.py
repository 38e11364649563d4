"""Schema of the `lm` runner: the training recipe around the method (schedule, checkpoints)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

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
    eval: a task of the generate runner scored after training in the same run, decoding through
      the ``kv_cache`` slot (e.g. train with ``optimizer=cosmos``, score recall with ``kv_cache=gear``):
      compose one with ``+runner/task@runner.eval=recall``; its ``table/*`` numbers are ``eval/*``.
      eval_batch_size: prompts decoded together.
    init_from: an lm run folder or .ckpt whose weights start the model (e.g. the SFT model DPO starts
      from); null: the model group's own init. reference_from: the frozen reference of objectives that
      need one; null: a copy of the initial model (the usual DPO reference).
    Slots: an optimizer (AdamW when empty) over the trainable parameters, an objective (next-token
    cross-entropy when empty), and optionally an adapter, a temperature and, for ``eval``, a KV cache.
    """

    slots: ClassVar[dict] = {
        "optimizer": Slot(required=True, default="adamw"),
        "objective": Slot(required=True, default="next_token"),
        "adapter": Slot(),
        "temperature": Slot(),
        "kv_cache": Slot(),
    }
    _target_: str = "runners.lm.run"
    schedule: str = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1
    checkpoint_every: int = 100
    eval: Any = None
    eval_batch_size: int = 8
    init_from: Optional[str] = None
    reference_from: Optional[str] = None

    def __post_init__(self):
        checks.one_of("runner.schedule", self.schedule, SCHEDULES)
        checks.non_negative("runner.warmup_steps", self.warmup_steps)
        checks.in_range("runner.min_lr_ratio", self.min_lr_ratio, 0.0, 1.0)
        checks.non_negative("runner.checkpoint_every", self.checkpoint_every)
        checks.positive("runner.eval_batch_size", self.eval_batch_size)
        if self.eval is not None:
            from runners.generate.config import refuse_edit_task

            refuse_edit_task(self.eval, "runner.eval")

    def check_roles(self, roles) -> None:
        """A KV cache serves the evaluation after training: one without the other is a mistake; a
        reference checkpoint serves an objective that needs a reference."""
        if self.reference_from and not roles.objective.needs_reference:
            raise checks.ConfigError(f"runner.reference_from is set, and objective={roles.objective.registered_name} uses "
                                     "no reference model: drop it, or pick an objective with one (objective=dpo).")
        if roles.objective.needs_temperature and roles.temperature is None:
            raise checks.ConfigError(f"objective={roles.objective.registered_name} divides by a temperature and the "
                                     "temperature slot is empty: add temperature=tempnet (or temperature=global_tau "
                                     "temperature.learnable=true).")
        if self.eval is not None and roles.kv_cache is None:
            raise checks.ConfigError("runner.eval decodes through a KV cache and the kv_cache slot is empty: add "
                                     "kv_cache=fp16 (the uncompressed baseline) or a compressed one (kv_cache=gear, ...).")
        if self.eval is None and roles.kv_cache is not None:
            raise checks.ConfigError(f"kv_cache={roles.kv_cache.registered_name} is used only by the evaluation after "
                                     "training, and runner.eval is unset: add +runner/task@runner.eval=recall (or "
                                     "another task), or drop the kv_cache.")

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
