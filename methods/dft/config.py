from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import ObjectiveMethod

import methods.dft.data_config  # noqa: F401  (registers the data schemas: data=dft_toy, dft_uf, ...)

REFERENCES = ("cached", "model")


@schema("objective", "dft")
@dataclass
class DFTConfig(ObjectiveMethod):
    """DFT (Discriminative Fine-Tuning): Guo, Hong, Balmaseda, Yu, Qiu, Liu, Jiang, Zhao, Yang,
    "Discriminative Finetuning of Generative Large Language Models without Reward Models and Human
    Preference Data", ICML 2025, arXiv:2502.18679; spec ../shared/papers/dft.md §2.2-2.6 (as the
    official `dft_loss` computes it). Not "Dynamic Fine-Tuning" (arXiv:2508.05629).

    Trains on positives only: each prompt's answer y and m negatives y' sampled offline from the base
    model (``data=dft_toy`` / ``dft_uf``: the per-epoch columns, spec §2.4). Minimises

        F = -(1/n) sum_i s(y_i) + (tau/n) sum_i log sum_{y'} exp(s(y')/tau),   s = log pi_theta(y|x)

    with the partition estimated by importance sampling (proposal pi_ref on the training prompt) and
    a per-prompt moving average u_i in log space (`methods.dft.estimator`): d_ij = lp(y'_ij)/tau -
    lp_ref(y'_ij), log u_i <- logaddexp(log(1-gamma) + log u_i, log gamma + logmeanexp_j d_ij), loss
    mean_i [-lp(y_i) + (1/m) sum_j w_ij lp(y'_ij)] with w_ij = exp(d_ij - log u_i) detached.

    tau: temperature of the discriminative likelihood (> 0). gamma: weight of the fresh mini-batch
      estimate in the moving average, in (0, 1] (1: no averaging). u_init: the initial log u (0: u = 1).
    reference: ``cached`` (the negatives' pi_ref log-probs computed once with the negatives, the
      official ``precompute_offline_ref_log_probs`` path; no reference model in memory) or ``model``
      (a frozen copy of the initial model scores them at every step).
    Defaults: the UltraFeedback recipe (recipes/dft/mistral_base_dft.yaml, spec §2.7): tau 1, gamma
    0.85, u_init 0. State: log u and the visited mask, 2 floats per training prompt, saved in every
    checkpoint; under DDP every step's updates are all-gathered (an id updated by several processes
    gets the mean of the log values, the official masked average). Log-probs use an fp32
    log-softmax (the official code: the model dtype; spec §2.9).
    """

    reference_free: ClassVar[bool] = False
    data_kind: ClassVar[str] = "positives"

    tau: float = 1.0
    gamma: float = 0.85
    u_init: float = 0.0
    reference: str = "cached"

    def __post_init__(self):
        from methods.dft.estimator import LogUTable

        checks.positive("method.tau", self.tau)
        checks.in_range("method.gamma", self.gamma, 0.0, 1.0, lo_open=True)
        checks.one_of("method.reference", self.reference, REFERENCES)
        self.table = LogUTable(self.u_init)

    @property
    def needs_reference(self) -> bool:  # type: ignore[override]
        return not self.reference_free and self.reference == "model"

    def _neg_reference(self, batch, reference):
        from methods.dft.objective import reference_logps_of_negatives

        if self.reference_free:
            return None
        if self.reference == "model":
            if reference is None:
                raise ValueError(f"objective={self.registered_name} with method.reference=model needs the frozen "
                                 "reference model.")
            return reference_logps_of_negatives(reference, batch)
        if "neg_ref_logps" not in batch:
            raise ValueError(f"objective={self.registered_name} with method.reference=cached reads the negatives' reference "
                             "log-probs from the batch ('neg_ref_logps'), and this batch has none: use a DFT data "
                             "source (data=dft_toy, data=dft_uf), or set method.reference=model.")
        return batch["neg_ref_logps"].float()

    def loss(self, model, batch, reference=None):
        from methods.dft.objective import positive_and_negative_logps

        lp_pos, len_pos, lp_neg, len_neg = positive_and_negative_logps(model, batch)
        return self.step(lp_pos, len_pos, lp_neg, len_neg, self._neg_reference(batch, reference), batch["prompt_id"])

    def step(self, lp_pos, len_pos, lp_neg, len_neg, ref_neg, ids) -> dict:
        """One micro-step of spec §2.3 on per-sequence answer log-probs (lp ``(B,)`` / ``(B, m)``, with grad),
        answer lengths, the negatives' reference log-probs (unused by DFT2) and the prompts' ids: updates
        log u of ``ids`` (and, under DDP, of every process's ids) and returns the surrogate loss and its stats."""
        from methods.dft.estimator import all_gather_updates, log_diffs, moving_average, surrogate_loss

        d = log_diffs(lp_neg, len_neg, ref_neg, self.tau, self.reference_free)
        log_u = moving_average(self.table.get(ids).to(d), d, self.gamma)
        if self.reference_free:
            s_pos, s_neg = lp_pos / len_pos, lp_neg / len_neg
        else:
            s_pos, s_neg = lp_pos, lp_neg
        loss, w = surrogate_loss(s_pos, s_neg, d, log_u)
        self.table.set(*all_gather_updates(ids, log_u))
        return {"loss": loss, "logps_chosen": lp_pos.detach().mean(), "logps_rejected": lp_neg.detach().mean(),
                "log_u": log_u.mean(), "weight": w.mean(), "diff": d.mean()}

    def evaluate(self, model, batch, reference=None):
        from methods.dft.objective import positives_metrics

        return positives_metrics(model, batch)

    def state_dict(self) -> dict:
        return self.table.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"log_u", "u_mask"}:
            raise ValueError(f"objective={self.registered_name} keeps 'log_u' and 'u_mask', and the checkpoint holds "
                             f"{sorted(state)}: was it written by a run with another objective?")
        self.table.load_state_dict(state)


@schema("objective", "dft2")
@dataclass
class DFT2Config(DFTConfig):
    """DFT2: DFT without a reference model (same paper, spec §2.2, §2.5; the official
    `dft_loss_ref_free`): the score is the per-token mean s = lp(y)/|y| for the positive and the
    negatives alike, and the log-weights are d_ij = s(y'_ij)/tau (the sampled set as a uniform
    proposal). Defaults: the recipe recipes/dft/mistral_base_dft2.yaml: tau 0.3, gamma 0.9, u_init 0.
    ``reference`` is unused.
    """

    reference_free: ClassVar[bool] = True

    tau: float = 0.3
    gamma: float = 0.9
