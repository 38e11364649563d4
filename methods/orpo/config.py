from __future__ import annotations

from dataclasses import dataclass

from methods.sequence_pairs import SequencePairObjective
from reprolab.registry import schema


@schema("objective", "orpo")
@dataclass
class ORPOConfig(SequencePairObjective):
    """ORPO: Hong, Lee, Thorne, "ORPO: Monolithic Preference Optimization without Reference Model",
    arXiv:2403.07691, Eqs. 6-7 (a baseline of DFT, ../shared/papers/dft.md §3):

        L = -log pi(w)/|w|  +  beta * ( -log sigmoid( log odds(w) - log odds(l) ) ),
        odds(y) = p / (1 - p),  p = exp(log pi(y) / |y|)

    no reference; the NLL is the chosen answer's per-token mean (ORPO's L_SFT). ``beta`` is ORPO's
    lambda (TRL's name for it); the logged margin x is the log odds ratio (unscaled). Default lambda = 0.1
    (ORPO's Mistral runs used 0.1-0.2).
    """

    beta: float = 0.1

    def from_terms(self, t, batch):
        import torch
        import torch.nn.functional as F

        def log_odds(lp, n):
            avg = lp / n  # log p, p the geometric mean token probability
            return avg - torch.log1p(-torch.exp(avg).clamp(max=1 - 1e-7))

        x = log_odds(t.pw, t.nw) - log_odds(t.pl, t.nl)
        nll = -t.pw / t.nw
        return x, nll - self.beta * F.logsigmoid(x), {"nll_chosen": nll.detach()}
