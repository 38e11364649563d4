from __future__ import annotations

from dataclasses import dataclass

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import OptimizerMethod


@schema("optimizer", "sgd")
@dataclass
class SGDConfig(OptimizerMethod):
    """Stochastic gradient descent with momentum (torch.optim.SGD semantics).

    buf <- momentum buf + g; step = g + momentum buf if nesterov else buf; W <- W - lr step.
    Weight decay (L2, added to g) applies to matrices (dim >= 2) only.
    """

    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0

    def __post_init__(self):
        checks.positive("method.lr", self.lr)
        checks.in_range("method.momentum", self.momentum, 0.0, 1.0, hi_open=True)
        checks.non_negative("method.weight_decay", self.weight_decay)
        if self.nesterov and self.momentum == 0:
            raise checks.ConfigError("method.nesterov=true needs method.momentum > 0.")

    def build_optimizer(self, model):
        import torch

        from reprolab.params import decay_groups

        return torch.optim.SGD(decay_groups(model, self.weight_decay), lr=self.lr, momentum=self.momentum,
                               nesterov=self.nesterov)
