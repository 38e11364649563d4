"""An MLP reward model over item features (`reprolab.models.config.MLPReward`)."""
from __future__ import annotations

import torch
from torch import nn

from reprolab.checks import ConfigError


class MLPRewardModel(nn.Module):
    """r(segment) = sum over the segment's steps of MLP(x_t): input ``(B, dim)`` (one step) or
    ``(B, m, dim)`` (segments of m steps) -> ``(B,)``."""

    def __init__(self, input_dim: int, hidden_sizes: list[int], activation: str = "relu"):
        super().__init__()
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        layers, width = [], input_dim
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), act()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        self.input_dim = input_dim

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.input_dim:
            raise ConfigError(f"the reward model takes {self.input_dim} features per step (model.input_dim) and the "
                              f"data has {features.shape[-1]}: set model.input_dim={features.shape[-1]} (or data.dim).")
        out = self.net(features).squeeze(-1)
        return out.sum(-1) if features.ndim == 3 else out


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """``(B,)``: the position of each row's last non-pad token (the rightmost 1 of its mask), for left
    and right padding alike. A row with no token is an error (it has nothing to score)."""
    positions = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    if not attention_mask.any(-1).all():
        raise ValueError("a sequence of the batch has no token (all of its attention mask is 0): a reward model "
                         "scores the last token of prompt + response; drop empty pairs in the data.")
    return (positions * attention_mask.bool()).argmax(-1)


class LMRewardModel(nn.Module):
    """A causal LM with a scalar head (`reprolab.models.config.CausalLM` with ``reward_head: true``): r(x) =
    w^T h_L(x), the last layer's hidden state at the last non-pad token through one linear unit, as the RLHF
    reward models (Ouyang et al., arXiv:2203.02155 §3.5; HF ``*ForSequenceClassification`` with num_labels 1).

    The backbone is the LM without its output head, kept under HF's own prefix (``model`` for LLaMA,
    ``transformer`` for GPT-2), so a causal LM's checkpoint (e.g. the SFT model, ``runner.init_from``) loads
    into it: its output head is dropped and the scalar head ``score`` keeps its initialisation. Positions
    count the real tokens only (left padding shifts nothing). Output: ``(B,)`` float32 rewards.
    """

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.prefix = type(backbone).base_model_prefix
        self.add_module(self.prefix, backbone)
        self.config = backbone.config
        self.score = nn.Linear(backbone.config.hidden_size, 1, bias=False)
        nn.init.normal_(self.score.weight, std=getattr(backbone.config, "initializer_range", 0.02))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = getattr(self, self.prefix)(input_ids=input_ids, attention_mask=attention_mask,
                                            position_ids=position_ids).last_hidden_state
        last = last_token_index(attention_mask)
        return self.score(hidden[torch.arange(hidden.shape[0], device=hidden.device), last]).squeeze(-1).float()

    def get_output_embeddings(self):
        """No token head: a reward model has no logits to temper (``temperature`` refuses it)."""
        return None

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """A reward model's own state, or a causal LM's (its output head dropped; the scalar head kept)."""
        state = {k: v for k, v in state_dict.items() if not k.startswith("lm_head.")}
        if "score.weight" not in state:
            state["score.weight"] = self.score.weight.detach().clone()
        return super().load_state_dict(state, strict=strict, assign=assign)
