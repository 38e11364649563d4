from __future__ import annotations

from dataclasses import dataclass

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import ObjectiveMethod


@schema("objective", "dpo")
@dataclass
class DPOConfig(ObjectiveMethod):
    """DPO: Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a
    Reward Model", arXiv:2305.18290, Eq. 7:

        L = -log sigmoid(beta * ([log pi(w) - log pi_ref(w)] - [log pi(l) - log pi_ref(l)]))

    averaged over pairs; pi_ref is the frozen reference (the initial policy). ``label_smoothing`` eps
    > 0 is conservative DPO (cDPO: the label is wrong with probability eps), L = (1 - eps) L(h) +
    eps L(-h). Logged: the loss, the reward accuracy (share of pairs with a positive margin) and the
    mean margin beta h. Defaults: beta = 0.1 (the paper's), eps = 0.
    """

    data_kind = "preference"
    needs_reference = True
    beta: float = 0.1
    label_smoothing: float = 0.0

    def __post_init__(self):
        checks.positive("method.beta", self.beta)
        checks.in_range("method.label_smoothing", self.label_smoothing, 0.0, 0.5, hi_open=True)

    def _per_pair(self, model, batch, reference):
        import torch.nn.functional as F

        from methods.preference import policy_margins

        h = self.beta * policy_margins(model, reference, batch)
        eps = self.label_smoothing
        return -(1 - eps) * F.logsigmoid(h) - eps * F.logsigmoid(-h), h

    def loss(self, model, batch, reference=None):
        losses, h = self._per_pair(model, batch, reference)
        return {"loss": losses.mean(), "reward_acc": (h > 0).float().mean(), "margin": h.detach().mean()}

    def evaluate(self, model, batch, reference=None):
        losses, h = self._per_pair(model, batch, reference)
        n = h.new_tensor(float(h.numel()))
        return {"loss": (losses.sum(), n), "reward_acc": ((h > 0).float().sum(), n), "margin": (h.sum(), n)}
