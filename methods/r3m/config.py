from __future__ import annotations

import math
from dataclasses import dataclass

from methods.pairwise import PairBuffer, PairwiseObjective
from reprolab import checks
from reprolab.registry import schema


@schema("objective", "r3m")
@dataclass
class R3MConfig(PairwiseObjective):
    """R3M: Bukharin, Hong, Jiang, Li, Zhang, Zhang, Zhao, "Robust Reinforcement Learning from
    Corrupted Human Feedback", NeurIPS 2024, arXiv:2406.15568, Eqs. 3.2-3.5 (spec
    ../shared/papers/r3m.md §2): the perturbed Bradley-Terry model p = sigmoid(x_i + delta_i) with an
    l1 penalty on the per-pair outlier delta_i, optimised alternately:

        delta_i = max(log(1/lam - 1) - x_i, 0)              (3.4, x_i detached: the current model's margin)
        L_i     = -log sigmoid(x_i + delta_i) + lam * delta_i   (3.5, a gradient step on the model only)

    i.e. the per-sample form (3.3) with ``lam`` in (0, 1) (the spec's normalisation note, §2.2). The
    gradient is BT's with the per-pair weight capped at lam: dL/dx = -min(1 - sigmoid(x), lam) (§2.4).
    delta is recomputed from the current model at every visit; the last value of each training pair
    is kept (indexed by ``pair_id``) for analysis and saved with the run. Logged: mean delta and the
    share of flagged pairs (delta > 0).

    Defaults: a reward model (``margin=reward``, beta = 1) with lam = 0.5, the spec's suggested
    reward-model default ([inferred], §2.6; its CPU grid uses {0.3, 0.5, 0.7}). R3M-DPO is
    ``objective=r3m_dpo``.
    """

    margin: str = "reward"
    beta: float = 1.0
    lam: float = 0.5

    def __post_init__(self):
        super().__post_init__()
        checks.in_range("method.lam", self.lam, 0.0, 1.0, lo_open=True, hi_open=True)
        self._delta = PairBuffer("delta")

    @property
    def knot(self) -> float:
        """c = log(1/lam - 1): delta_i > 0 exactly when x_i < c."""
        return math.log(1 / self.lam - 1)

    def pair_losses(self, x, batch):
        import torch.nn.functional as F

        delta = (self.knot - x.detach()).clamp(min=0)  # (3.4): no gradient path through delta
        return -F.logsigmoid(x + delta) + self.lam * delta, {"delta": delta, "flagged": (delta > 0).float()}

    def observe(self, x, stats, batch):
        from methods.preference import pair_ids

        self._delta.write(pair_ids(batch, self.registered_name), stats["delta"])

    def outlier_threshold(self) -> float:
        return self.knot

    @property
    def deltas(self):
        """The last delta of every training pair seen (NaN: never visited), indexed by pair_id."""
        return self._delta.state()

    def state_dict(self) -> dict:
        return {"delta": self._delta.state()}

    def load_state_dict(self, state: dict) -> None:
        unknown = set(state) - {"delta"}
        if unknown:
            raise ValueError(f"objective={self.registered_name} keeps only 'delta', and the checkpoint holds "
                             f"{sorted(unknown)}: was it written by a run with another objective?")
        if "delta" in state:
            self._delta.load(state["delta"])


@schema("objective", "r3m_dpo")
@dataclass
class R3MDPOConfig(R3MConfig):
    """R3M-DPO (arXiv:2406.15568 §3.2; spec ../shared/papers/r3m.md §2.5): R3M on the DPO margin
    x = beta * h against the frozen reference, delta_i = max(log(1/lam - 1) - beta h_i, 0) on the
    detached margin. Defaults: beta = 0.1 (the DPO baselines' grid; the paper states none for
    R3M-DPO, [inferred]), lam = 0.75 (the spec's suggested DPO default, inside both NLG grids
    {0.65, 0.75, 0.85} and {0.75, 0.8, 0.85}).
    """

    margin: str = "policy"
    beta: float = 0.1
    lam: float = 0.75


def profile_loss(x, lam: float):
    """min over delta of -log sigmoid(x + delta) + lam |delta|: the Huberised logistic loss with knot
    c = log(1/lam - 1) (spec §2.4): -log sigmoid(x) for x >= c, -log sigmoid(c) + lam (c - x) below."""
    import torch
    import torch.nn.functional as F

    c = math.log(1 / lam - 1)
    return torch.where(x >= c, -F.logsigmoid(x), -F.logsigmoid(torch.as_tensor(c, dtype=x.dtype)) + lam * (c - x))
