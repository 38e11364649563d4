from __future__ import annotations

from dataclasses import dataclass

from methods.simpo.config import SimPOConfig
from reprolab import checks
from reprolab.registry import schema


@schema("objective", "simpo_sft")
@dataclass
class SimPOSFTConfig(SimPOConfig):
    """SimPO-SFT: the SimPO loss plus an SFT term on the chosen answer, as CPO adds it (Xu et al.,
    "Contrastive Preference Optimization", arXiv:2401.08417, Eq. 6); a baseline of DFT
    (../shared/papers/dft.md §3):

        L = L_SimPO + lam * ( -log pi(w) / |w| )

    The SFT term is the per-token mean NLL of the chosen answer (TRL's CPO ``nll_loss``, [assumed]: the
    DFT paper does not state its normalisation); lam = 1 [assumed]. SimPO's defaults otherwise.
    """

    lam: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        checks.non_negative("method.lam", self.lam)

    def from_terms(self, t, batch):
        x, losses, stats = super().from_terms(t, batch)
        nll = -t.pw / t.nw
        return x, losses + self.lam * nll, {**stats, "nll_chosen": nll.detach()}
