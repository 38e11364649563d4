from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import TemperatureMethod

from methods.tempnet.config import check_bounds


@schema("temperature", "tempnet_clip")
@dataclass
class TempNetClipConfig(TemperatureMethod):
    """TempNet for CLIP: one temperature per image and per text, predicted from the detached normalised
    embedding by a prototype-pooling network per modality (arXiv:2404.04575, ../shared/papers/tempnet.md
    §2.3, `methods.tempnet.module.TempGenerator`; `zhqiu/TempNet:Bimodal_CL/models/losses.py`). Used by
    ``objective=isogclr`` on a dual encoder (model=clip_mlp, clip_rn50_distilbert).

    prototypes: M (256); tau_min / tau_max: 0.005 / 0.05 (the code's effective range: ``tau_min=0.01`` is
    accepted by the loss but never reaches ``TempGenerator``); dropout: 0.5. The prototypes are set from
    the first training batch's embeddings of the other modality (image TempNet <- texts).
    frozen_model: train only the two TempNets (the encoders stay as loaded).
    lr / weight_decay: the TempNets' own optimizer group at a constant lr (spec §2.4: CC3M 3e-5, no weight
      decay; the code also decays it by 0.9 per epoch, not done here); lr null: the model's groups and schedule.
    """

    identity: ClassVar[dict] = {"tau_min": 1.0, "tau_max": 1.0}
    reads: ClassVar[str] = "embedding"
    prototypes: int = 256
    tau_min: float = 0.005
    tau_max: float = 0.05
    dropout: float = 0.5
    frozen_model: bool = False
    lr: Optional[float] = None
    weight_decay: float = 0.0

    def __post_init__(self):
        checks.positive("method.prototypes", self.prototypes)
        check_bounds(self.tau_min, self.tau_max)
        if self.lr is not None:
            checks.positive("method.lr", self.lr)
        checks.non_negative("method.weight_decay", self.weight_decay)
        checks.in_range("method.dropout", self.dropout, 0.0, 1.0, hi_open=True)

    def trains_alone(self) -> bool:
        return self.frozen_model

    def param_group(self):
        return None if self.lr is None else {"lr": self.lr, "weight_decay": self.weight_decay}

    def module(self, hidden_size: int):
        """Two TempGenerators over embeddings of size ``hidden_size``."""
        from methods.tempnet.module import ContrastiveTempNet

        return ContrastiveTempNet(hidden_size, prototypes=self.prototypes, tau_min=self.tau_min,
                                  tau_max=self.tau_max, dropout=self.dropout)
