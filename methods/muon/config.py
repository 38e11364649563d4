from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from methods.cosmos.config import BACKENDS, NS_DTYPES
from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import OptimizerMethod


SCALES = ("keller", "moonlight")


@schema("optimizer", "muon")
@dataclass
class MuonConfig(OptimizerMethod):
    """Muon: Jordan et al., "Muon: An optimizer for hidden layers in neural networks" (2024),
    KellerJordan/Muon `SingleDeviceMuonWithAuxAdam` (update: methods/muon/optimizer.py; cosmos.md §3.3).

    Hidden matrices take Muon (lr, momentum, nesterov, ns_steps, weight_decay, scale); embeddings,
    the head, gains and biases take AdamW with the adam_* options. scale: ``keller``
    (max(1, m/n)^0.5) or ``moonlight`` (0.2 sqrt(max(m, n)), arXiv:2502.16982).
    Defaults: the official ones (lr 0.02, momentum 0.95, ns_steps 5), except adam_lr = 1e-3: the AdamW
    branch at the AdamW baseline's lr (cosmos.md §4.2; official default 3e-4).
    """

    lr: float = 0.02
    momentum: float = 0.95
    nesterov: bool = True
    ns_steps: int = 5
    weight_decay: float = 0.0
    scale: str = "keller"
    adam_lr: float = 1e-3
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    adam_eps: float = 1e-10
    adam_weight_decay: float = 0.0
    ns_dtype: str = "auto"
    backend: Optional[str] = None

    def __post_init__(self):
        checks.positive("method.lr", self.lr)
        checks.in_range("method.momentum", self.momentum, 0.0, 1.0, hi_open=True)
        checks.positive("method.ns_steps", self.ns_steps)
        checks.non_negative("method.weight_decay", self.weight_decay)
        checks.one_of("method.scale", self.scale, SCALES)
        checks.positive("method.adam_lr", self.adam_lr)
        checks.betas("method.adam_betas", self.adam_betas, 2)
        checks.non_negative("method.adam_eps", self.adam_eps)
        checks.non_negative("method.adam_weight_decay", self.adam_weight_decay)
        checks.one_of("method.ns_dtype", self.ns_dtype, NS_DTYPES)
        checks.one_of("method.backend", self.backend, BACKENDS)

    def build_optimizer(self, model):
        from methods.muon.optimizer import Muon
        from reprolab.params import matrix_branch_groups

        aux = {"lr": self.adam_lr, "betas": tuple(self.adam_betas), "eps": self.adam_eps,
               "weight_decay": self.adam_weight_decay}
        groups = matrix_branch_groups(model, "use_muon", {"weight_decay": self.weight_decay}, aux)
        return Muon(groups, lr=self.lr, momentum=self.momentum, nesterov=self.nesterov, ns_steps=self.ns_steps,
                    weight_decay=self.weight_decay, scale=self.scale, adam_lr=self.adam_lr,
                    adam_betas=tuple(self.adam_betas), adam_eps=self.adam_eps,
                    adam_weight_decay=self.adam_weight_decay, ns_dtype=self.ns_dtype, backend=self.backend)
