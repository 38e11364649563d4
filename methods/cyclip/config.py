from __future__ import annotations

from dataclasses import dataclass

from reprolab import checks
from reprolab.registry import schema

from methods.clip_loss.config import ClipLossConfig


@schema("objective", "cyclip")
@dataclass
class CyCLIPConfig(ClipLossConfig):
    """CyCLIP (Goel et al., "CyCLIP: Cyclic Contrastive Language-Image Pretraining", NeurIPS 2022,
    arXiv:2205.14459; TempNet's Table 2 baseline, `zhqiu/TempNet:Bimodal_CL/models/losses.py` ``CyCLIP_Loss``,
    ../shared/papers/tempnet.md §3): the CLIP loss at a fixed tau plus two penalties on the geometry of the batch,

        loss = CLIP(S / tau) + inmodal * ||I I^T - T T^T||_F^2 / B + crossmodal * ||S - S^T||_F^2 / B,  S = I T^T

    with I, T the (B, D) normalised embeddings. The official code squares the differences of the tau-scaled
    similarities, takes their mean and multiplies by tau^2 B: the same numbers, tau cancels.

    inmodal, crossmodal: the weights lambda_1, lambda_2 (default 0.25 each, CyCLIP's and TempNet's code);
    tau: as ``objective=clip`` (default 0.01, the code's ``--temp``).
    """

    inmodal: float = 0.25
    crossmodal: float = 0.25

    def __post_init__(self):
        super().__post_init__()
        checks.non_negative("method.inmodal", self.inmodal)
        checks.non_negative("method.crossmodal", self.crossmodal)

    def pair_loss(self, model, image, text, batch):
        sim = image @ text.t()
        n = sim.shape[0]
        inmodal = (image @ image.t() - text @ text.t()).square().sum() / n
        crossmodal = (sim - sim.t()).square().sum() / n
        clip = self.clip_loss(sim)
        return {"loss": clip + self.inmodal * inmodal + self.crossmodal * crossmodal, "clip_loss": clip.detach(),
                "inmodal_cyclic": inmodal.detach(), "crossmodal_cyclic": crossmodal.detach()}
