"""RoseLoRA as an `adapter` plugin: peft's LoRA layers plus row/column pruning (`methods.roselora.pruning`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from reprolab import checks
from reprolab.registry import schema
from methods.lora.config import LoRAAdapterConfig

SELECTIONS = ("kthvalue", "topk")


@schema("adapter", "roselora")
@dataclass
class RoseLoRAAdapterConfig(LoRAAdapterConfig):
    """RoseLoRA: Wang et al., "RoseLoRA: Row and Column-wise Sparse Low-rank Adaptation of Pre-trained
    Language Model for Knowledge Editing and Fine-tuning", EMNLP 2024, arXiv:2406.10777.

    ΔW = (alpha / r) B A as LoRA (peft's ``LoraConfig``: the layers, merging and the saved tensors are
    peft LoRA's), trained under row-wise sparsity of A and column-wise sparsity of B (§2.1: every row
    of A keeps a fraction ρ of its ``in`` entries, every column of B a fraction ρ of its ``out``), so
    density(ΔW) <= Σ_i ρ_B,i ρ_A,i <= r ρ². Which entries stay is decided by sensitivity importance
    |w ∂L/∂w| smoothed by an EMA (§2.3), pruned after each optimizer step once the kept fraction of the
    cubic schedule (§2.4) drops below 1 (§2.5). See `methods.roselora.pruning` for the equations and
    `methods.roselora.adapter` for why this is a peft LoRA plus a pruner, not a new peft tuner.

    Defaults are the official editing code (../shared/papers/roselora.md §2.6-2.7:
    ``hparams/RoseLoRA/llama-7b.yaml`` and the constants hard-coded in ``execute_roselora``): r 8,
    alpha 32, dropout 0.1, W_q and W_v, density ρ = 0.05 (the code's ``sparsity``, the *kept*
    fraction), t_init 3 (``full_iter``), t_final 20 (``burnin_iter``), beta1 0.8, clamp 3e-3,
    ``kthvalue`` selection, no uncertainty term.

    density: ρ, the fraction of each row of A / column of B kept at the end of the schedule; 1 = LoRA.
    t_init / t_final: optimizer steps: kept fraction 1 before t_init, cubic decrease to ρ at t_final,
      then ρ (AdaLoRA's form with t_final = T − t_f for fine-tuning over T steps).
    beta1: importance EMA Ī ← beta1 Ī + (1 − beta1)|g w| (the first step takes |g w| as it is).
    use_uncertainty / beta2: multiply Ī by AdaLoRA's uncertainty EMA Ū ← beta2 Ū + (1 − beta2)|I − Ī|
      (the paper cites AdaLoRA's score; the official code has no Ū; beta2 0.85 as AdaLoRA).
    clamp: after each prune, clamp A and B to ±clamp (official code, undocumented in the paper);
      null: off.
    selection: ``kthvalue`` (official: keeps n − ⌊n(1 − rate)⌋ + 1 of n when scores are distinct) or
      ``topk`` (exactly ⌈rate·n⌉).
    """

    use_dora: ClassVar[bool] = False

    alpha: float = 32.0
    dropout: float = 0.1
    density: float = 0.05
    t_init: int = 3
    t_final: int = 20
    beta1: float = 0.8
    use_uncertainty: bool = False
    beta2: float = 0.85
    clamp: Optional[float] = 3e-3
    selection: str = "kthvalue"

    def __post_init__(self):
        super().__post_init__()
        checks.in_range("adapter.density", self.density, 0.0, 1.0, lo_open=True)
        checks.non_negative("adapter.t_init", self.t_init)
        if self.t_final < self.t_init:
            raise checks.ConfigError(
                f"adapter.t_final={self.t_final} is before adapter.t_init={self.t_init}: the kept fraction falls from "
                "1 at t_init to adapter.density at t_final, so set t_final >= t_init.")
        checks.in_range("adapter.beta1", self.beta1, 0.0, 1.0, hi_open=True)
        checks.in_range("adapter.beta2", self.beta2, 0.0, 1.0, hi_open=True)
        if self.clamp is not None:
            checks.positive("adapter.clamp", self.clamp)
        checks.one_of("adapter.selection", self.selection, SELECTIONS)

    def keep_rate(self, step: int) -> float:
        """The kept fraction of each row of A / column of B after optimizer step ``step`` (0-based)."""
        from methods.roselora.pruning import keep_rate

        return keep_rate(step, self.density, self.t_init, self.t_final)

    # ---- role hooks ----------------------------------------------------------------------------
    def inject(self, model):
        from methods.roselora import adapter

        return adapter.inject(model, self)

    def merge(self, model):
        from methods.roselora import adapter

        return adapter.merge(model)

    def on_before_train_step(self, model):
        from methods.roselora import adapter

        adapter.pruner_of(model).update_importance()

    def on_train_step(self, model, step, max_steps):
        from methods.roselora import adapter

        rate = self.keep_rate(step)
        if rate < 1.0:
            adapter.pruner_of(model).prune(rate)

    def train_state_dict(self, model):
        from methods.roselora import adapter

        return adapter.pruner_of(model).state_dict()

    def load_train_state_dict(self, model, state):
        from methods.roselora import adapter

        if state:
            adapter.pruner_of(model).load_state_dict(state)
