"""LoRA, DoRA and AdaLoRA as `adapter` plugins: our fields fill peft's configs (`methods.lora.tuner`
injects them into a plain transformers model; why not ``get_peft_model`` is said there)."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Optional

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles.adapter import AdapterMethod

BIASES = ("none", "all", "lora_only")             # peft's `bias`
INITS = {"default": True, "gaussian": "gaussian"}  # our name -> peft's `init_lora_weights`


@dataclass
class PeftAdapterConfig(AdapterMethod, ABC):
    """An adapter that is a peft tuner: subclasses say which peft config (`peft_config`); injection,
    merging and the adapter's state dict are peft's (`methods.lora.tuner`).

    Fields shared by peft's LoRA family:
    alpha: the scale numerator, ΔW = (alpha / r) B A (peft's ``lora_alpha``).
    dropout: dropout on the adapter's input (peft's ``lora_dropout``).
    bias: which biases train with the adapter: none, all, lora_only (those of the adapted layers);
      the trained ones are part of `adapter_state_dict`.
    """

    alpha: float = 8.0
    dropout: float = 0.0
    bias: str = "none"

    def __post_init__(self):
        super().__post_init__()
        checks.positive("adapter.alpha", self.alpha)
        checks.in_range("adapter.dropout", self.dropout, 0.0, 1.0, hi_open=True)
        checks.one_of("adapter.bias", self.bias, BIASES)

    @abstractmethod
    def peft_config(self):
        """The peft config (``peft.LoraConfig`` or a subclass) these fields describe."""

    def check_targets(self, model):
        from methods.lora import tuner

        tuner.check_unwrapped(model)  # before matching: a wrapped model's targets are peft layers
        return super().check_targets(model)

    def inject(self, model):
        from methods.lora import tuner

        return tuner.inject(model, self.peft_config())

    def merge(self, model):
        from methods.lora import tuner

        return tuner.merge(model)

    def adapter_state_dict(self, model):
        from methods.lora import tuner

        return tuner.adapter_state_dict(model, self.bias)


@schema("adapter", "lora")
@dataclass
class LoRAAdapterConfig(PeftAdapterConfig):
    """LoRA: Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv:2106.09685.

    Eq. 3: h = W0 x + (alpha / r) B A x with W0 frozen, A (r x in), B (out x r), B = 0 at init so
    the adapted model starts equal to the base. peft's ``LoraConfig`` / ``LoraModel``.

    Defaults: r 8 and alpha 8 (= r: the paper sets alpha to the first r it tries and does not tune
    it, §4.1; both are peft's defaults), dropout 0 and bias none (peft's defaults), W_q and W_v
    (§7.1, `AdapterMethod.target_modules`). init: default = peft's ``init_lora_weights=True``, the
    reference implementation's kaiming-uniform A and zero B; gaussian = A ~ N(0, 1/r), B = 0.
    The DoRA / commonsense recipes use r 32, alpha 64 on q, k, v, up, down (roselora.md §2.6).
    """

    use_dora: ClassVar[bool] = False

    r: int = 8
    init: str = "default"

    def __post_init__(self):
        super().__post_init__()
        checks.positive("adapter.r", self.r)
        checks.one_of("adapter.init", self.init, INITS)

    def peft_config(self):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.target_modules), bias=self.bias,
                          init_lora_weights=INITS[self.init], use_dora=self.use_dora)


@schema("adapter", "dora")
@dataclass
class DoRAAdapterConfig(LoRAAdapterConfig):
    """DoRA: Liu et al., "DoRA: Weight-Decomposed Low-Rank Adaptation", arXiv:2402.09353.

    Eq. 5: W' = m (W0 + (alpha / r) B A) / ||W0 + (alpha / r) B A||_c, with the column norm treated
    as a constant in the backward pass (§4.3) and m initialised to ||W0||_c, so the adapted model
    starts equal to the base. LoRA's fields and defaults; peft's ``LoraConfig(use_dora=True)``.
    """

    use_dora: ClassVar[bool] = True


@schema("adapter", "adalora")
@dataclass
class AdaLoRAAdapterConfig(PeftAdapterConfig):
    """AdaLoRA: Zhang et al., "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning",
    arXiv:2303.10512. peft's ``AdaLoraConfig`` / ``AdaLoraModel`` (field names are peft's).

    ΔW = P Λ Q (eq. 3; Λ = ``lora_E``, zero at init, so the adapted model starts equal to the base).
    Sensitivity I = |w ∇w L| smoothed by EMAs (beta1: importance, beta2: uncertainty, eq. 8-9);
    every ``deltaT`` steps the singular values below the budget b(t) are masked to zero. b(t) starts
    at ``init_r`` per matrix, stays there for ``tinit`` steps, falls cubically to ``target_r`` per
    matrix at ``total_step - tfinal`` and stays there (eq. 11). ``orth_reg_weight`` weighs the
    orthogonality penalty on P and Q (eq. 4, peft's unsquared form; `regularizer`).
    total_step: None = the run's max steps (given to `on_train_step`).

    Defaults are peft's ``AdaLoraConfig`` (target_r 8, init_r 12, tinit 0, tfinal 0, deltaT 1,
    beta1 = beta2 = 0.85 as the paper, orth_reg_weight 0.5) and `PeftAdapter`'s alpha, dropout and
    bias; W_q and W_v as LoRA (the AdaLoRA paper adapts all six matrices of a layer: set
    ``adapter.target_modules`` for that).
    """

    target_r: int = 8
    init_r: int = 12
    tinit: int = 0
    tfinal: int = 0
    deltaT: int = 1
    beta1: float = 0.85
    beta2: float = 0.85
    orth_reg_weight: float = 0.5
    total_step: Optional[int] = None

    def __post_init__(self):
        super().__post_init__()
        checks.positive("adapter.target_r", self.target_r)
        checks.positive("adapter.init_r", self.init_r)
        if self.init_r < self.target_r:
            raise checks.ConfigError(f"adapter.init_r={self.init_r} is below adapter.target_r={self.target_r}: AdaLoRA "
                                     "prunes the rank down, so set init_r >= target_r.")
        checks.non_negative("adapter.tinit", self.tinit)
        checks.non_negative("adapter.tfinal", self.tfinal)
        checks.positive("adapter.deltaT", self.deltaT)
        checks.in_range("adapter.beta1", self.beta1, 0.0, 1.0, hi_open=True)
        checks.in_range("adapter.beta2", self.beta2, 0.0, 1.0, hi_open=True)
        checks.non_negative("adapter.orth_reg_weight", self.orth_reg_weight)
        if self.total_step is not None:
            self._check_schedule(self.total_step, "adapter.total_step")

    def _check_schedule(self, total_step: int, source: str) -> None:
        if self.tinit >= total_step - self.tfinal:
            raise checks.ConfigError(
                f"adapter.tinit={self.tinit} + adapter.tfinal={self.tfinal} leave no rank-allocation steps in "
                f"{source}={total_step}: make tinit + tfinal smaller than it.")

    def peft_config(self):
        from peft import AdaLoraConfig

        # Until `on_train_step` gives the run's length, total_step holds the least value peft accepts.
        total = self.total_step or self.tinit + self.tfinal + 1
        return AdaLoraConfig(target_r=self.target_r, init_r=self.init_r, tinit=self.tinit, tfinal=self.tfinal,
                             deltaT=self.deltaT, beta1=self.beta1, beta2=self.beta2,
                             orth_reg_weight=self.orth_reg_weight, total_step=total, lora_alpha=self.alpha,
                             lora_dropout=self.dropout, target_modules=list(self.target_modules), bias=self.bias)

    def on_train_step(self, model, step, max_steps):
        from methods.lora import tuner

        if self.total_step is None:
            self._check_schedule(max_steps, "the run's max steps")
        tuner.rank_allocation_step(model, step, self.total_step or max_steps)

    def regularizer(self, model):
        from methods.lora import tuner

        return self.orth_reg_weight * tuner.orthogonal_penalty(model) if self.orth_reg_weight else None
