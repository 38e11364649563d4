from __future__ import annotations

from dataclasses import dataclass, field

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import OptimizerMethod


@schema("method", "adam_mini")
@dataclass
class AdamMini(OptimizerMethod):
    """Adam-mini: Zhang et al., "Adam-mini: Use Fewer Learning Rates To Gain More",
    arXiv:2406.16793 (update and partition: methods/adam_mini/optimizer.py; cosmos.md §3.5).
    The hidden size and head count come from the model's HF config.
    """

    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    weight_decay: float = 0.0

    def __post_init__(self):
        checks.positive("method.lr", self.lr)
        checks.betas("method.betas", self.betas, 2)
        checks.non_negative("method.eps", self.eps)
        checks.non_negative("method.weight_decay", self.weight_decay)

    def build_optimizer(self, model):
        from methods.adam_mini.optimizer import AdamMini

        config = getattr(model, "config", None)
        return AdamMini(model.named_parameters(), lr=self.lr, betas=tuple(self.betas), eps=self.eps,
                        weight_decay=self.weight_decay, dim=getattr(config, "hidden_size", None),
                        n_heads=getattr(config, "num_attention_heads", None))
