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
