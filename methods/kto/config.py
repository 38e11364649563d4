from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from methods.sequence_pairs import SequencePairObjective
from reprolab import checks
from reprolab.registry import schema


@schema("objective", "kto")
@dataclass
class KTOConfig(SequencePairObjective):
    """KTO: Ethayarajh, Xu, Muennighoff, Jurafsky, Kiela, "KTO: Model Alignment as Prospect Theoretic
    Optimization", arXiv:2402.01306, Eq. 8 (a baseline of DFT, ../shared/papers/dft.md §3), on the pairs'
    answers as separate examples (chosen = desirable, rejected = undesirable):

        r(y) = log pi(y) - log pi_ref(y),   z0 = max(0, KL-hat) (detached)
        L_w = lam_D (1 - sigmoid(beta (r(w) - z0))),   L_l = lam_U (1 - sigmoid(beta (z0 - r(l))))

    per pair (L_w + L_l) / 2, i.e. the mean over the 2B examples. KL-hat is the batch mean of r on
    mismatched pairs (prompt i with the chosen answer of pair i+1, TRL's KL completions), not gathered
    across processes. The logged margin x = beta (r(w) - r(l)). Defaults: beta 0.1, lam_D = lam_U = 1.
    """

    uses_reference: ClassVar[bool] = True
    beta: float = 0.1
    lam_d: float = 1.0
    lam_u: float = 1.0

    def __post_init__(self):
        super().__post_init__()
        checks.positive("method.lam_d", self.lam_d)
        checks.positive("method.lam_u", self.lam_u)

    def margins(self, model, batch, reference=None):
        from methods.kto.mismatch import kl_estimate

        self._z0 = kl_estimate(model, reference, batch).clamp(min=0).detach()
        return super().margins(model, batch, reference)

    def from_terms(self, t, batch, z0=None):
        import torch

        z0 = self._z0 if z0 is None else z0
        rw, rl = t.pw - t.rw, t.pl - t.rl
        lw = self.lam_d * (1 - torch.sigmoid(self.beta * (rw - z0)))
        ll = self.lam_u * (1 - torch.sigmoid(self.beta * (z0 - rl)))
        return self.beta * (rw - rl), (lw + ll) / 2, {"kl": z0.expand_as(rw)}
