from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reprolab import checks
from reprolab.registry import schema

from methods.tempnet.config import TempNetHead


@schema("temperature", "tempnet_clip")
@dataclass
class TempNetClipConfig(TempNetHead):
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

    reads: ClassVar[str] = "embedding"
    prototypes: int = 256
    tau_min: float = 0.005
    tau_max: float = 0.05

    def __post_init__(self):
        super().__post_init__()
        checks.positive("method.prototypes", self.prototypes)

    def module(self, hidden_size: int):
        """Two TempGenerators over embeddings of size ``hidden_size``."""
        from methods.tempnet.module import ContrastiveTempNet

        return ContrastiveTempNet(hidden_size, prototypes=self.prototypes, tau_min=self.tau_min,
                                  tau_max=self.tau_max, dropout=self.dropout)
