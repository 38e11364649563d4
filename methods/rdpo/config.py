from __future__ import annotations

from dataclasses import dataclass

from methods.pairwise import PairwiseObjective
from reprolab import checks
from reprolab.registry import schema


@schema("objective", "rdpo")
@dataclass
class RDPOConfig(PairwiseObjective):
    """rDPO: Ray Chowdhury et al., "Provably Robust DPO: Aligning Language Models with Noisy
    Feedback", arXiv:2403.00409, Eq. 8 (TRL's "robust" loss):

        L = [ -(1 - eps) log sigmoid(beta h) + eps log sigmoid(-beta h) ] / (1 - 2 eps)

    an unbiased estimate of the clean DPO loss when each label is flipped with probability eps
    (a per-pair value may be negative). Unlike cDPO (``objective=dpo`` with ``label_smoothing``) it
    is its own loss, hence its own name. eps = ``flip_rate`` in [0, 0.5); default 0.1 (the rate of
    the R3M CPU grid, ../shared/papers/r3m.md §5.1). With ``margin=reward`` (beta = 1) it is the
    reward-model analogue on d.
    """

    margin: str = "policy"
    beta: float = 0.1
    flip_rate: float = 0.1

    def __post_init__(self):
        super().__post_init__()
        checks.in_range("method.flip_rate", self.flip_rate, 0.0, 0.5, hi_open=True)

    def pair_losses(self, x, batch):
        import torch.nn.functional as F

        eps = self.flip_rate
        return (-(1 - eps) * F.logsigmoid(x) + eps * F.logsigmoid(-x)) / (1 - 2 * eps), {}
