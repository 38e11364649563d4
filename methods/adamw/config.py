from __future__ import annotations

from dataclasses import dataclass, field

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import OptimizerMethod


@schema("optimizer", "adamw")
@dataclass
class AdamWConfig(OptimizerMethod):
    """AdamW: Loshchilov & Hutter, "Decoupled Weight Decay Regularization", arXiv:1711.05101.

    torch.optim.AdamW semantics: m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
    W <- W (1 - lr wd); W <- W - lr m_hat / (sqrt(v_hat) + eps).
    Weight decay applies to matrices (dim >= 2) only; gains and biases get none.
    """

    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1e-8
    weight_decay: float = 0.0

    def __post_init__(self):
        checks.positive("method.lr", self.lr)
        checks.betas("method.betas", self.betas, 2)
        checks.positive("method.eps", self.eps)
        checks.non_negative("method.weight_decay", self.weight_decay)

    def build_optimizer(self, model):
        import torch

        from reprolab.params import decay_groups

        return torch.optim.AdamW(decay_groups(model, self.weight_decay), lr=self.lr, betas=tuple(self.betas), eps=self.eps)
