from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import SteeringMethod


@schema("steering", "pasta")
@dataclass
class PASTAConfig(SteeringMethod):
    """PASTA: Zhang et al., "Tell Your Model Where to Attend: Post-hoc Attention Steering for LLMs",
    ICLR 2024, arXiv:2311.02262 (spec: ../shared/papers/autopasta.md §2.3).

    For each steered head, every query row's attention to the prompt keys outside the highlight G is
    scaled by alpha and the row renormalised: T(A)_ij = s_j A_ij / sum_j' s_j' A_ij', s = 1 on G and
    on generated tokens, alpha on the rest of the prompt. Implemented, as the official code, by adding
    log(alpha) to those pre-softmax scores, at prefill and at every decoding step.

    heads: ``{layer: [query head ids]}`` (the official head-config format; keys are layer indices).
      Empty: no head is steered (the identity). alpha: the scale (0.01 in PASTA, ``scale_position=exclude``).
    """

    identity: ClassVar[dict] = {"alpha": 1.0, "heads": {"0": [0, 1], "1": [3]}}
    alpha: float = 0.01
    heads: dict[str, list[int]] = field(default_factory=dict)

    def __post_init__(self):
        checks.in_range("method.alpha", self.alpha, 0.0, 1.0, lo_open=True)
        for layer, ids in self.heads.items():
            if not str(layer).isdigit() or any(not isinstance(h, int) or h < 0 for h in ids):
                raise checks.ConfigError(f"method.heads={dict(self.heads)!r}: keys are layer indices and values lists of "
                                         "query head ids >= 0, e.g. {'0': [1, 3], '5': [0]}.")

    def check_model(self, model_config) -> None:
        layers, n_heads = model_config.num_hidden_layers, model_config.num_attention_heads
        for layer, ids in self.heads.items():
            if int(layer) >= layers or any(h >= n_heads for h in ids):
                raise checks.ConfigError(f"method.heads names layer {layer} heads {list(ids)}; the model has {layers} layers of "
                                         f"{n_heads} query heads: pick heads within them.")

    def score_bias(self, layer, num_heads, key_len, highlight):
        import torch

        ids = self.heads.get(str(layer))
        if not ids or self.alpha == 1.0:
            return None
        B, prompt = highlight.shape
        outside = ~highlight[:, :key_len]
        bias = torch.zeros(B, num_heads, 1, key_len, device=highlight.device)
        row = torch.zeros(B, key_len, device=highlight.device)
        row[:, : outside.shape[1]] = outside.float() * math.log(self.alpha)
        bias[:, list(ids), 0, :] = row[:, None, :]
        return bias
