from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import OptimizerMethod


@schema("optimizer", "soap")
@dataclass
class SoapConfig(OptimizerMethod):
    """SOAP: Vyas et al., "SOAP: Improving and Stabilizing Shampoo using Adam", arXiv:2409.11321
    (update: methods/soap/optimizer.py; cosmos.md §3.2). Every tensor takes SOAP, as in the
    reference; sides longer than max_precond_dim (a 32000-token vocabulary) are not preconditioned.
    Weight decay on matrices only. shampoo_beta: null uses betas[1].
    """

    lr: float = 3e-3
    betas: list[float] = field(default_factory=lambda: [0.95, 0.95])
    shampoo_beta: Optional[float] = None
    eps: float = 1e-8
    weight_decay: float = 0.01
    precondition_frequency: int = 10
    max_precond_dim: int = 10000
    precondition_1d: bool = False
    normalize_grads: bool = False
    correct_bias: bool = True

    def __post_init__(self):
        checks.positive("method.lr", self.lr)
        checks.betas("method.betas", self.betas, 2)
        if self.shampoo_beta is not None:
            checks.in_range("method.shampoo_beta", self.shampoo_beta, 0.0, 1.0, hi_open=True)
        checks.non_negative("method.eps", self.eps)
        checks.non_negative("method.weight_decay", self.weight_decay)
        checks.positive("method.precondition_frequency", self.precondition_frequency)
        checks.positive("method.max_precond_dim", self.max_precond_dim)

    def build_optimizer(self, model):
        from methods.soap.optimizer import SOAP
        from reprolab.params import decay_groups

        return SOAP(decay_groups(model, self.weight_decay), lr=self.lr, betas=tuple(self.betas),
                    shampoo_beta=self.shampoo_beta, eps=self.eps, weight_decay=self.weight_decay,
                    precondition_frequency=self.precondition_frequency, max_precond_dim=self.max_precond_dim,
                    precondition_1d=self.precondition_1d, normalize_grads=self.normalize_grads,
                    correct_bias=self.correct_bias)
