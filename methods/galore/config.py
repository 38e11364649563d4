from __future__ import annotations

from dataclasses import dataclass, field

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import OptimizerMethod


@schema("optimizer", "galore")
@dataclass
class GaloreConfig(OptimizerMethod):
    """GaLore: Zhao et al., "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank
    Projection", arXiv:2403.03507 (update: methods/galore/optimizer.py; cosmos.md §3.4).

    The hidden matrices (GaLore's "attn"/"mlp" Linear targets) are projected to ``rank`` with a
    projector refreshed every ``update_proj_gap`` steps and the update multiplied by ``scale``;
    everything else takes GaLore's AdamW. Defaults: the C4 scripts for LLaMA-130M/350M
    (lr 0.01, rank 256, gap 200, scale 0.25) with the reference's HF-AdamW betas and eps.
    """

    lr: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-6
    weight_decay: float = 0.0
    rank: int = 256
    update_proj_gap: int = 200
    scale: float = 0.25

    def __post_init__(self):
        checks.positive("method.lr", self.lr)
        checks.betas("method.betas", self.betas, 2)
        checks.non_negative("method.eps", self.eps)
        checks.non_negative("method.weight_decay", self.weight_decay)
        checks.positive("method.rank", self.rank)
        checks.positive("method.update_proj_gap", self.update_proj_gap)
        checks.positive("method.scale", self.scale)

    def build_optimizer(self, model):
        from methods.galore.optimizer import GaLoreAdamW
        from reprolab.params import hidden_matrices

        hidden, rest = hidden_matrices(model)
        projected = {"rank": self.rank, "update_proj_gap": self.update_proj_gap, "scale": self.scale}
        groups = [
            {"params": [p for _, p in hidden], "weight_decay": self.weight_decay, **projected},
            {"params": [p for _, p in rest if p.dim() >= 2], "weight_decay": self.weight_decay},
            {"params": [p for _, p in rest if p.dim() < 2], "weight_decay": 0.0},
        ]
        return GaLoreAdamW([g for g in groups if g["params"]], lr=self.lr, betas=tuple(self.betas), eps=self.eps,
                           weight_decay=self.weight_decay)
