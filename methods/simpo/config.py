from __future__ import annotations

from dataclasses import dataclass

from methods.sequence_pairs import SequencePairObjective
from reprolab import checks
from reprolab.registry import schema


@schema("objective", "simpo")
@dataclass
class SimPOConfig(SequencePairObjective):
    """SimPO: Meng, Xia, Chen, "SimPO: Simple Preference Optimization with a Reference-Free Reward",
    arXiv:2405.14734, Eq. 6 (a baseline of DFT, ../shared/papers/dft.md §3):

        L = -log sigmoid( (beta/|w|) log pi(w) - (beta/|l|) log pi(l) - gamma_s )

    no reference model; |y| the answer's token count. Logged margin x = beta (mean-token log-prob
    difference), before the target margin gamma_s. Defaults: SimPO's Mistral-7B-Base setting, beta = 2.0,
    gamma_s = 1.6 (gamma_s / beta = 0.8).
    """

    beta: float = 2.0
    gamma_s: float = 1.6

    def __post_init__(self):
        super().__post_init__()
        checks.non_negative("method.gamma_s", self.gamma_s)

    def from_terms(self, t, batch):
        import torch.nn.functional as F

        x = self.beta * (t.pw / t.nw - t.pl / t.nl)
        return x, -F.logsigmoid(x - self.gamma_s), {}
