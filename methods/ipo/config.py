from __future__ import annotations

from dataclasses import dataclass

from methods.pairwise import PairwiseObjective
from reprolab.registry import schema


@schema("objective", "ipo")
@dataclass
class IPOConfig(PairwiseObjective):
    """IPO: Azar et al., "A General Theoretical Paradigm to Understand Learning from Human
    Preferences", arXiv:2310.12036, Eq. 17 (the empirical IPO loss, tau = beta), in TRL's "ipo" form
    with sequence log-probs summed over the response tokens (as the R3M / APS papers used it):

        L = (h - 1/(2 beta))^2,   h = [log pi(w) - log pi_ref(w)] - [log pi(l) - log pi_ref(l)]

    From the scaled margin x = beta h: L = (x - 1/2)^2 / beta^2. Default beta = 0.1 (TRL's).
    """

    margin: str = "policy"
    beta: float = 0.1

    def pair_losses(self, x, batch):
        return (x - 0.5) ** 2 / self.beta**2, {}
