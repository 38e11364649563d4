"""Schema of the `edit` runner: knowledge editing through the adapter slot (RoseLoRA, LoRA, FT-M, ...)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import reprolab.data.editing_config  # noqa: F401  (registers data=facts and the edit tasks)
from reprolab import checks
from reprolab.registry import schema
from reprolab.slots import Slot

DTYPES = ("float32", "bfloat16")


@schema("runner", "edit")
@dataclass
class EditRunner:
    """Edit a model's knowledge with the ``adapter`` slot trained by the ``optimizer`` slot, EasyEdit's protocol as
    RoseLoRA's official ``execute_roselora`` runs it (../shared/papers/roselora.md §2.6, §4.1).

    task: the edit requests (``runner/task=edit_facts|edit_counterfact|edit_zsre|edit_knowedit``).
    init_from: an lm run folder or .ckpt holding the model to edit (e.g. the tiny LM pretrained with
      ``data=facts``); null: ``model.pretrained`` (``model.hf_id``) or the model group's random init.
    tokenizer: null: the task's own (the fact world's words) or the model's (``model.hf_id``); else an HF id.
    batch_edits: edits applied together to one fresh copy of the model (1: the official single-edit
      protocol, every edit on a fresh copy); a batch's loss is the mean over its edits.
    num_steps: optimizer steps per edit (the official 25 iterations over the request).
    early_stop_loss / early_stop_after: stop once the step's loss is below early_stop_loss at a step
      index past early_stop_after (official: ``it > burnin_iter`` (20) and loss < 0.1).
    fluency_tokens: greedy tokens generated from each edit prompt for the n-gram-entropy fluency (EasyEdit:
      100); 0: not measured.
    dtype / device: of the model being edited (the adapter's importance state stays fp32).
    """

    slots: ClassVar[dict] = {"optimizer": Slot(required=True, default="adamw"),
                             "adapter": Slot(required=True, default="roselora")}
    _target_: str = "runners.edit.run"
    task: Any = None
    init_from: Optional[str] = None
    tokenizer: Optional[str] = None
    batch_edits: int = 1
    num_steps: int = 25
    early_stop_loss: float = 0.1
    early_stop_after: int = 20
    fluency_tokens: int = 0
    score_batch_size: int = 256
    dtype: str = "float32"
    device: str = "auto"

    def __post_init__(self):
        checks.positive("runner.batch_edits", self.batch_edits)
        checks.positive("runner.num_steps", self.num_steps)
        checks.non_negative("runner.early_stop_loss", self.early_stop_loss)
        checks.non_negative("runner.fluency_tokens", self.fluency_tokens)
        checks.positive("runner.score_batch_size", self.score_batch_size)
        checks.one_of("runner.dtype", self.dtype, DTYPES)
