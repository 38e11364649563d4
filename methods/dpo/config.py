from __future__ import annotations

from dataclasses import dataclass

from methods.bt.config import BTConfig
from reprolab.registry import schema


@schema("objective", "dpo")
@dataclass
class DPOConfig(BTConfig):
    """DPO: Rafailov et al., "Direct Preference Optimization: Your Language Model is Secretly a
    Reward Model", arXiv:2305.18290, Eq. 7:

        L = -log sigmoid(beta * ([log pi(w) - log pi_ref(w)] - [log pi(l) - log pi_ref(l)]))

    averaged over pairs; pi_ref is the frozen reference (the initial policy). It is Bradley-Terry
    (`methods.bt`) on the policy's implicit reward margin, so it shares BT's loss: ``label_smoothing``
    eps > 0 is conservative DPO (cDPO: the label is wrong with probability eps), L = (1 - eps) L(h) +
    eps L(-h). cDPO has no plugin name of its own: it is this loss with one value changed, and a
    second name would file identical runs under two rows. Logged: the loss, the reward accuracy
    (share of pairs with a positive margin) and the mean margin beta h. Defaults: beta = 0.1 (the
    paper's), eps = 0, ``margin=policy``.
    """

    margin: str = "policy"
    beta: float = 0.1
