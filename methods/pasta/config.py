from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Optional

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import SteeringMethod

SECTIONS = ("official", "union")


@schema("steering", "pasta")
@dataclass
class PASTAConfig(SteeringMethod):
    """PASTA: Zhang et al., "Tell Your Model Where to Attend: Post-hoc Attention Steering for LLMs",
    ICLR 2024, arXiv:2311.02262 (spec: ../shared/papers/autopasta.md §2.3).

    For each steered head, every query row's attention to the prompt keys outside the highlight G is
    scaled by alpha and the row renormalised: T(A)_ij = s_j A_ij / sum_j' s_j' A_ij', s = 1 on G and
    on generated tokens, alpha on the rest of the prompt. Implemented, as the official code, by adding
    log(alpha) to those pre-softmax scores, at prefill and at every decoding step: a masked add on the
    scores of the selected heads inside the one attention pass (`reprolab.models.attention`).

    heads: ``[[layer, query head], ...]`` (``method.heads=[[1,0],[1,2]]``; with GQA the ids index query
      heads). Empty: no head is steered (the identity).
    alpha: the scale (0.01 in PASTA, ``scale_position=exclude``; AutoPASTA's delta = log 100).
    sections: several highlighted sections (a ``(batch, K, prompt)`` highlight) are combined as
      ``official`` (`edit_multisection_attention`: the exclude rule once per section, so a prompt token
      outside all K sections gets alpha^K, one inside exactly one alpha^(K-1), generated tokens 1) or
      ``union`` (alpha once on the complement of the union). Identical for one section.
    heads_file: a head config (JSON ``{"heads": {layer: [ids]}}``, as AutoPASTA's profiling saves per
      model, or the official ``{layer: [ids]}``) read when the run starts; overrides ``heads``.
    A highlight row with no token marked is left unsteered (an example whose key sentence could not
    be found decodes as direct prompting).
    """

    identity: ClassVar[dict] = {"alpha": 1.0, "heads": [[0, 0], [0, 1], [1, 3]]}
    alpha: float = 0.01
    heads: list[list[int]] = field(default_factory=list)
    sections: str = "official"
    heads_file: Optional[str] = None

    def __post_init__(self):
        checks.in_range("method.alpha", self.alpha, 0.0, 1.0, lo_open=True)
        checks.one_of("method.sections", self.sections, SECTIONS)
        self.use_heads(self.heads)

    def use_heads(self, heads) -> None:
        """Steer ``heads`` (pairs, or a ``{layer: [ids]}`` head config) from now on."""
        self._by_layer = check_heads(heads)
        self._memo = None
        self.heads = [[layer, h] for layer, ids in self._by_layer.items() for h in ids]

    def check_model(self, model_config) -> None:
        check_heads_fit(self._by_layer, model_config)

    def setup(self, model, task, tokenizer, decoder) -> None:
        if self.heads_file is not None:
            self.use_heads(load_heads(self.heads_file))
            check_heads_fit(self._by_layer, model.config)

    def score_bias(self, layer, num_heads, key_len, highlight):
        import torch

        ids = self._by_layer.get(layer)
        if not ids or self.alpha == 1.0:
            return None
        memo = self.__dict__.get("_memo")  # one bias per layer and highlight, built at its first forward
        if memo is None or memo[0] is not highlight or memo[1] != num_heads:
            memo = self._memo = (highlight, num_heads, {})
        bias = memo[2].get(layer)
        if bias is None:
            row = prompt_bias(highlight, math.log(self.alpha), self.sections)  # (B, prompt)
            bias = torch.zeros(row.shape[0], num_heads, 1, row.shape[1], device=row.device)
            bias[:, list(ids), 0] = row[:, None, :]
            memo[2][layer] = bias
        if key_len <= bias.shape[-1]:
            return bias[..., :key_len]
        return torch.nn.functional.pad(bias, (0, key_len - bias.shape[-1]))  # generated keys keep weight 1


def prompt_bias(highlight, log_alpha: float, sections: str = "official"):
    """The additive bias of every prompt key, ``(batch, prompt_len)``: ``log_alpha`` times the number of
    sections a key lies outside of (``official``) or once outside their union (``union``); rows (or
    sections) with no highlighted token contribute nothing."""
    g = highlight if highlight.dim() == 3 else highlight[:, None]  # (B, K, P)
    active = g.any(-1, keepdim=True)
    if sections == "union":
        outside = ~g.any(1) & active.any(1)
    else:
        outside = (~g & active).sum(1)
    return outside.float() * log_alpha


def check_heads(heads) -> dict[int, list[int]]:
    """``{layer: [head ids]}`` from ``[[layer, head], ...]`` pairs or a head config ``{layer: [ids]}`` (JSON: string keys)."""
    pairs = [(l, h) for l, ids in heads.items() for h in ids] if isinstance(heads, dict) else [tuple(p) for p in heads]
    out: dict[int, list[int]] = {}
    for pair in pairs:
        if len(pair) != 2 or not str(pair[0]).isdigit() or not isinstance(pair[1], int) or pair[1] < 0:
            raise checks.ConfigError(f"method.heads={heads!r}: give [layer, query head] pairs of indices >= 0, e.g. "
                                     "method.heads=[[0,1],[0,3],[5,0]] (or a head-config file: method.heads_file).")
        out.setdefault(int(pair[0]), []).append(pair[1])
    return {layer: sorted(set(ids)) for layer, ids in sorted(out.items())}


def load_heads(path: str) -> dict[int, list[int]]:
    """The heads of a head-config file (``{"heads": {...}}`` or the official ``{layer: [ids]}``)."""
    import json
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise checks.ConfigError(f"method.heads_file={path!r} does not exist: profile the heads first (steering=autopasta "
                                 "with this heads_file writes it) or give method.heads.")
    data = json.loads(p.read_text())
    return check_heads(data.get("heads", data))


def check_heads_fit(heads: dict, model_config) -> None:
    layers, n_heads = model_config.num_hidden_layers, model_config.num_attention_heads
    for layer, ids in heads.items():
        if layer >= layers or any(h >= n_heads for h in ids):
            raise checks.ConfigError(f"method.heads names layer {layer} heads {list(ids)}; the model has {layers} layers of "
                                     f"{n_heads} query heads: pick heads within them.")
