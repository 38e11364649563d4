from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reprolab.registry import schema
from reprolab.roles import ObjectiveMethod


@schema("objective", "sft")
@dataclass
class SFTConfig(ObjectiveMethod):
    """SFT on DFT's data, the baseline of Guo et al., arXiv:2502.18679 (spec ../shared/papers/dft.md §2.5,
    §3): L = the token-mean cross-entropy of the positive answers of the batch (the official DFTTrainer's
    ``sft: true``: nn.CrossEntropyLoss over all chosen tokens of the micro-batch); the negatives are ignored.

    It is `next_token`'s loss on the ``positives`` batches, so that SFT, DFT and DFT2 see the same prompts
    in the same order and are scored by the same validation (exact match, the margin to a known
    distractor: `methods.dft.objective.positives_metrics`). Note the normalisation differs from DFT's
    per-sequence sum (spec §7): compare them at their own learning rates.
    """

    data_kind: ClassVar[str] = "positives"

    def loss(self, model, batch, reference=None):
        from methods.next_token import next_token_loss

        rows = {"input_ids": batch["pos_input_ids"], "labels": batch["pos_labels"],
                "attention_mask": batch["pos_attention_mask"]}
        return {"loss": next_token_loss(model, rows)}

    def evaluate(self, model, batch, reference=None):
        from methods.dft.objective import positives_metrics

        return positives_metrics(model, batch)
