from __future__ import annotations

from dataclasses import dataclass

from methods.pairwise import PairwiseObjective
from reprolab.registry import schema


@schema("objective", "slic")
@dataclass
class SLiCConfig(PairwiseObjective):
    """SLiC-HF: Zhao et al., "SLiC-HF: Sequence Likelihood Calibration with Human Feedback",
    arXiv:2305.10425, Eq. 1 (the rank-calibration hinge, margin 1, without the SFT regulariser), in
    TRL's "hinge" form used by the R3M and APS papers:

        L = max(0, 1 - beta h)

    Default beta = 0.1 (TRL's).
    """

    margin: str = "policy"
    beta: float = 0.1

    def pair_losses(self, x, batch):
        return (1 - x).clamp(min=0), {}
