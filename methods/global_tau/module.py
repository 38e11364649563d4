from __future__ import annotations

import math

import torch


class GlobalTau(torch.nn.Module):
    """tau(h) = exp(log_tau), the same for every input; ``log_tau`` trains when ``learnable``."""

    def __init__(self, tau: float = 1.0, learnable: bool = False):
        super().__init__()
        self.log_tau = torch.nn.Parameter(torch.tensor(math.log(tau)), requires_grad=learnable)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.log_tau.exp().expand(*h.shape[:-1], 1)
