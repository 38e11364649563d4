from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import TemperatureMethod


@schema("temperature", "global_tau")
@dataclass
class GlobalTauConfig(TemperatureMethod):
    """One temperature for every input: logits / tau. The baselines of TempNet (arXiv:2404.04575,
    ../shared/papers/tempnet.md): tau = 1 is plain cross-entropy; ``learnable=true`` trains one
    global tau with the model (parametrised as log tau, so it stays > 0).

    tau: the (initial) temperature. learnable: train it.
    """

    identity: ClassVar[dict] = {"tau": 1.0, "learnable": True}
    tau: float = 1.0
    learnable: bool = False

    def __post_init__(self):
        checks.positive("method.tau", self.tau)

    def module(self, hidden_size: int):
        from methods.global_tau.module import GlobalTau

        return GlobalTau(self.tau, self.learnable)
