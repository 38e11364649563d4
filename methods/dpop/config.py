from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from methods.sequence_pairs import SequencePairObjective
from reprolab import checks
from reprolab.registry import schema


@schema("objective", "dpop")
@dataclass
class DPOPConfig(SequencePairObjective):
    """DPO-Positive (DPOP): Pal, Karkhanis, Dooley, Roberts, Naidu, White, "Smaug: Fixing Failure Modes of
    Preference Optimisation with DPO-Positive", arXiv:2402.13228, Eq. 3; the "DPO-p" row of the DFT
    tables ([inferred from the name], ../shared/papers/dft.md §3):

        L = -log sigmoid( beta * ( h - lam * max(0, log pi_ref(w) - log pi(w)) ) ),
        h = [log pi(w) - log pi_ref(w)] - [log pi(l) - log pi_ref(l)]

    the penalty keeps the chosen answer's likelihood from falling below the reference's. Defaults:
    lam = 50 (DPOP's), beta = 0.1 (DPO's; DPOP's beta for this data is not given).
    """

    uses_reference: ClassVar[bool] = True
    beta: float = 0.1
    lam: float = 50.0

    def __post_init__(self):
        super().__post_init__()
        checks.non_negative("method.lam", self.lam)

    def from_terms(self, t, batch):
        import torch.nn.functional as F

        penalty = (t.rw - t.pw).clamp(min=0)
        x = self.beta * ((t.pw - t.rw) - (t.pl - t.rl) - self.lam * penalty)
        return x, -F.logsigmoid(x), {"penalty": penalty.detach()}
