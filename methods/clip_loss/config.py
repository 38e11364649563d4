from __future__ import annotations

from dataclasses import dataclass

from reprolab import checks
from reprolab.registry import schema

from methods.contrastive import ContrastiveObjective


@schema("objective", "clip")
@dataclass
class ClipLossConfig(ContrastiveObjective):
    """The CLIP loss with a fixed temperature (Radford et al., arXiv:2103.00020; TempNet's baseline,
    `zhqiu/TempNet:Bimodal_CL/models/losses.py` ``CLIP_Loss``, ../shared/papers/tempnet.md §3):
    (CE(S / tau, I) + CE(S^T / tau, I)) / 2 over the batch, S the image-text cosine similarities.

    tau: the temperature; default 0.01, the code's ``--temp`` (the CPU analog uses 0.05, spec §5).
    """

    tau: float = 0.01

    def __post_init__(self):
        checks.positive("method.tau", self.tau)

    def pair_loss(self, model, image, text, batch):
        return {"loss": self.clip_loss(image @ text.t())}

    def clip_loss(self, sim):
        """The symmetric CE of the (B, B) similarities ``sim`` at ``tau``, the matching pairs on the diagonal."""
        import torch
        import torch.nn.functional as F

        logits = sim / self.tau
        labels = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
