from __future__ import annotations

from dataclasses import dataclass

from methods.pairwise import PairwiseObjective
from reprolab import checks
from reprolab.registry import schema


def sigmoid_losses(x, label_smoothing: float):
    """-(1 - eps) log sigmoid(x) - eps log sigmoid(-x), per pair (stable log-sigmoid)."""
    import torch.nn.functional as F

    eps = label_smoothing
    out = -F.logsigmoid(x)
    return out if eps == 0 else (1 - eps) * out - eps * F.logsigmoid(-x)


@schema("objective", "bt")
@dataclass
class BTConfig(PairwiseObjective):
    """Bradley-Terry reward learning: Bradley & Terry (1952); as the RLHF reward-model loss in
    Christiano et al., "Deep reinforcement learning from human preferences", arXiv:1706.03741,
    and Ouyang et al., arXiv:2203.02155, Eq. 1:

        L = -log sigmoid(x),   x = beta * (r(w) - r(l))

    averaged over pairs. ``label_smoothing`` eps > 0 is the conservative form (the label is wrong
    with probability eps; Mitchell 2023, "A note on DPO with noisy preferences", cDPO):
    L = -(1 - eps) log sigmoid(x) - eps log sigmoid(-x). Defaults: a reward model (``margin=reward``),
    beta = 1 (the plain BT margin d), eps = 0. With ``margin=policy`` this is DPO (``objective=dpo``).
    """

    margin: str = "reward"
    beta: float = 1.0
    label_smoothing: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        checks.in_range("method.label_smoothing", self.label_smoothing, 0.0, 0.5, hi_open=True)

    def pair_losses(self, x, batch):
        return sigmoid_losses(x, self.label_smoothing), {}
