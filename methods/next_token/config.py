from __future__ import annotations

from dataclasses import dataclass

from reprolab.registry import schema
from reprolab.roles import ObjectiveMethod


@schema("objective", "next_token")
@dataclass
class NextTokenConfig(ObjectiveMethod):
    """Next-token cross-entropy (causal-LM pretraining): the mean over the batch's labelled tokens;
    validation reports the token-weighted mean over the whole split (``val/loss``)."""

    def loss(self, model, batch, reference=None):
        from methods.next_token.loss import next_token_loss

        return {"loss": next_token_loss(model, batch)}

    def evaluate(self, model, batch, reference=None):
        from methods.next_token.loss import next_token_loss

        return {"loss": (next_token_loss(model, batch, reduction="sum"), (batch["labels"] != -100).sum())}
