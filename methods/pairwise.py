"""One interface for the pairwise preference objectives (BT, the DPO family, R3M, APS).

Every objective here maps per-pair margins to per-pair losses and per-pair statistics:

    x_i = beta * m_i,   m_i = r(w_i) - r(l_i)                           (``margin: reward``)
                        m_i = [log pi - log pi_ref](w_i) - [...](l_i)   (``margin: policy``, DPO's h)
                        m_i = r(w_i) - r(l_i), r a causal LM's scalar head (``margin: lm_reward``)

and a subclass writes only ``pair_losses(x, batch) -> (losses (B,), {stat: (B,)})``. The margin
source decides the batches and the models: ``reward`` margins come from a reward model (a module
mapping item features to a scalar, `reprolab.models.reward`) on ``preference_features`` batches;
``policy`` margins from a causal LM against its frozen reference on ``preference`` (token) batches;
``lm_reward`` margins from a causal-LM reward model (``model.reward_head=true``: a scalar on the last
non-pad token of prompt + response, `reprolab.models.reward.LMRewardModel`) on the same token batches.
A margin that is NaN or infinite stops the step with `NonFiniteMarginError` (how many pairs, the fix).

Logged per training step (``train/``): the mean loss, ``reward_acc`` (share of pairs with x > 0),
``margin`` (mean x) and the mean of each per-pair statistic. Validation sums the same. Objectives
with per-pair state (R3M's delta, APS's tau) write it in `observe` into a `PairBuffer` indexed by
the batches' stable ``pair_id``, saved with the run through ``state_dict``.
"""
from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reprolab import checks
from reprolab.checks import UserError
from reprolab.roles import ObjectiveMethod

if TYPE_CHECKING:
    import torch

MARGINS = ("reward", "policy", "lm_reward")
# The data kind each margin source consumes (`reprolab.roles.objective.DATA_KINDS`).
MARGIN_DATA_KIND = {"reward": "preference_features", "policy": "preference", "lm_reward": "preference"}


class NonFiniteMarginError(UserError, FloatingPointError):
    """A pair's margin is NaN or infinite: the message says how many pairs and where to look."""


@dataclass
class PairwiseObjective(ObjectiveMethod):
    """Base of the pairwise objectives: per-pair margins in, per-pair losses + stats out.

    margin: ``reward`` (a reward model over item features, d = r(w) - r(l)), ``policy`` (a policy against a
      frozen reference, DPO's implicit reward margin h) or ``lm_reward`` (a causal-LM reward model on text
      pairs, d = r(prompt + w) - r(prompt + l)). beta: the scale of the margin, x = beta * m.
    """

    margin: str = "policy"
    beta: float = 0.1

    def __post_init__(self):
        checks.one_of("method.margin", self.margin, MARGINS)
        checks.positive("method.beta", self.beta)

    @property
    def data_kind(self) -> str:  # type: ignore[override]
        return MARGIN_DATA_KIND[self.margin]

    @property
    def needs_reference(self) -> bool:  # type: ignore[override]
        return self.margin == "policy"

    # ---- what a subclass writes ---------------------------------------------------------------
    @abstractmethod
    def pair_losses(self, x: "torch.Tensor", batch: dict) -> tuple["torch.Tensor", dict]:
        """Per-pair losses ``(B,)`` and per-pair statistics ``{name: (B,)}`` from scaled margins x."""

    def observe(self, x: "torch.Tensor", stats: dict, batch: dict) -> None:
        """Training steps only: keep per-pair state (nothing by default)."""

    # ---- the role ---------------------------------------------------------------------------
    def margins(self, model, batch: dict, reference=None) -> "torch.Tensor":
        """``(B,)`` scaled margins x = beta * m of the batch's pairs."""
        from methods.preference import lm_reward_margins, policy_margins, reward_margins

        if self.margin == "policy":
            if reference is None:
                raise ValueError(f"objective={self.registered_name} with margin=policy needs the frozen reference model.")
            x = self.beta * policy_margins(model, reference, batch)
        elif self.margin == "lm_reward":
            x = self.beta * lm_reward_margins(model, batch)
        else:
            x = self.beta * reward_margins(model, batch)
        self._check_finite(x, batch)
        return x

    def _check_finite(self, x: "torch.Tensor", batch: dict) -> None:
        import torch

        bad = ~torch.isfinite(x.detach())
        if not bad.any():
            return
        nan_data = any(isinstance(v, torch.Tensor) and v.is_floating_point() and not torch.isfinite(v).all()
                       for k, v in batch.items() if k.endswith("_features"))
        where = ("the batch's item features hold NaN/inf: check the data" if nan_data else
                 "the model's outputs diverged: lower the learning rate (optimizer.lr), add warmup "
                 "(runner.warmup_steps) or clip gradients (trainer.gradient_clip_val)")
        raise NonFiniteMarginError(
            f"objective={self.registered_name}: the margin (margin={self.margin}) of {int(bad.sum())} of {x.numel()} "
            f"pairs is NaN or infinite, so the loss would be too; {where}.")

    def loss(self, model, batch, reference=None):
        x = self.margins(model, batch, reference)
        losses, stats = self.pair_losses(x, batch)
        self.observe(x.detach(), stats, batch)
        out = {"loss": losses.mean(), "reward_acc": (x.detach() > 0).float().mean(), "margin": x.detach().mean()}
        out.update({k: v.detach().float().mean() for k, v in stats.items()})
        return out

    def evaluate(self, model, batch, reference=None):
        x = self.margins(model, batch, reference)
        losses, stats = self.pair_losses(x, batch)
        n = x.new_tensor(float(x.numel()))
        out = {"loss": (losses.sum(), n), "reward_acc": ((x > 0).float().sum(), n), "margin": (x.sum(), n)}
        out.update({k: (v.float().sum(), n) for k, v in stats.items()})
        if self.margin == "reward" and "item_features" in batch:
            from methods.preference_metrics import reward_model_metrics

            out.update(reward_model_metrics(model, batch, self.outlier_threshold(), self.beta))
            import torch

            from methods.preference_metrics import calibration_error

            tau = stats.get("tau", 1.0)  # APS's probabilities are sigmoid(x / tau) (the official rm_test)
            out["ece"] = (calibration_error(torch.sigmoid(x.detach() / tau)), x.new_tensor(1.0))
        if "true_margin" in batch:  # per quintile of the true preference strength
            from methods.preference_metrics import quintile_means

            per_pair = {"true_gap": batch["true_margin"], "abs_margin": x.detach().abs(),
                        **{k: v.detach() for k, v in stats.items()}}
            out.update(quintile_means(per_pair, batch["true_margin"]))
        return out

    def outlier_threshold(self) -> float:
        """A training pair is flagged as an outlier when its margin d < this (R3M's c = log(1/lambda - 1);
        the spec scores the other objectives at lambda = 0.5, i.e. c = 0: the misranked pairs)."""
        return 0.0


class PairBuffer:
    """One float per training pair, indexed by the batches' ``pair_id`` (NaN: never visited).

    Grows on demand (a stream of fresh pairs keeps growing it: 4 bytes a pair). Written by the
    objective on every training step, saved in the run's checkpoints (`state_dict`).
    """

    def __init__(self, name: str):
        import torch

        self.name = name
        self.values = torch.full((0,), float("nan"))
        self.size = 0  # 1 + the largest pair_id written

    def write(self, pair_id: "torch.Tensor", values: "torch.Tensor") -> None:
        import torch

        ids = pair_id.detach().long().cpu()
        need = int(ids.max()) + 1 if ids.numel() else 0
        if need > self.values.numel():
            grown = torch.full((max(need, 2 * self.values.numel()),), float("nan"))
            grown[: self.values.numel()] = self.values
            self.values = grown
        self.size = max(self.size, need)
        self.values[ids] = values.detach().float().cpu()

    def state(self) -> "torch.Tensor":
        """``(1 + largest pair_id,)``: exactly n floats once all n training pairs were visited."""
        return self.values[: self.size].clone()

    def load(self, values) -> None:
        import torch

        self.values = torch.as_tensor(values, dtype=torch.float32).clone()
        self.size = self.values.numel()
