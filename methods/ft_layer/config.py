"""Fine-tuning of whole weight matrices as an `adapter` plugin: FT-L / FT-M, the editing baselines."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles.adapter import AdapterMethod


@schema("adapter", "ft_layer")
@dataclass
class FTLayerAdapterConfig(AdapterMethod):
    """Full fine-tuning of the matched linear layers' weights: FT-L / FT-M of EasyEdit (Zhang et al., "A
    Comprehensive Study of Knowledge Editing for Large Language Models", arXiv:2401.01286, the KnowEdit
    baselines RoseLoRA compares with; ../shared/papers/roselora.md §3).

    W = W0 + D with D a full trainable matrix, zero at start (`methods.ft_layer.delta`): the optimizer's
    update of D is the update fine-tuning W0 would get (the same gradient; weight decay would differ, and
    the editing recipes use none), while W0 stays untouched, so the edit merges and saves like an adapter.
    FT-M is this with the loss on the target tokens only (what the edit runner always does); FT-L adds
    ``norm_constraint``: after each step every entry of D is clamped to ±norm_constraint (EasyEdit's ℓ∞
    constraint, W kept within W0 ± eps).

    Default target: W_q and W_v, as every adapter (`AdapterMethod.target_modules`); EasyEdit's FT-M on
    LLaMA-2-7B edits one MLP: ``target_modules: [model.layers.21.mlp.down_proj]`` (set in the experiments).
    """

    norm_constraint: Optional[float] = None

    def __post_init__(self):
        super().__post_init__()
        if self.norm_constraint is not None:
            checks.positive("adapter.norm_constraint", self.norm_constraint)

    def check_targets(self, model):
        from methods.ft_layer import delta

        delta.check_unwrapped(model)
        return super().check_targets(model)

    def inject(self, model):
        from methods.ft_layer import delta

        return delta.inject(model, self.check_targets(model))

    def merge(self, model):
        from methods.ft_layer import delta

        return delta.merge(model)

    def adapter_state_dict(self, model):
        from methods.ft_layer import delta

        return delta.state_dict(model)

    def on_train_step(self, model, step, max_steps):
        if self.norm_constraint is not None:
            from methods.ft_layer import delta

            delta.clamp(model, self.norm_constraint)
