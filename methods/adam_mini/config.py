from __future__ import annotations

from dataclasses import dataclass

from methods.adamw.config import AdamWConfig
from reprolab.registry import schema


@schema("optimizer", "adam_mini")
@dataclass
class AdamMiniConfig(AdamWConfig):
    """Adam-mini: Zhang et al., "Adam-mini: Use Fewer Learning Rates To Gain More",
    arXiv:2406.16793 (update and partition: methods/adam_mini/optimizer.py; cosmos.md §3.5).
    AdamW's hyperparameters and checks; the hidden size and head count come from the model's HF config.
    """

    def build_optimizer(self, model):
        from methods.adam_mini.optimizer import AdamMini

        config = getattr(model, "config", None)
        return AdamMini(model.named_parameters(), lr=self.lr, betas=tuple(self.betas), eps=self.eps,
                        weight_decay=self.weight_decay, dim=getattr(config, "hidden_size", None),
                        n_heads=getattr(config, "num_attention_heads", None))
