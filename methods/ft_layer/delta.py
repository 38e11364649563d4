"""A full-rank additive update on linear layers: y = W0 x + b + D x, D trainable and zero at start."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reprolab.checks import UserError


class DeltaLinear(nn.Module):
    """``base`` (frozen) plus ``delta`` (same shape as its weight)."""

    def __init__(self, base: nn.Linear):
        super().__init__()
        self.base_layer = base
        self.delta = nn.Parameter(torch.zeros_like(base.weight))

    def forward(self, x):
        return self.base_layer(x) + F.linear(x, self.delta.to(x.dtype))

    def merged(self) -> nn.Linear:
        with torch.no_grad():
            self.base_layer.weight += self.delta.to(self.base_layer.weight.dtype)
        return self.base_layer


def check_unwrapped(model) -> None:
    if any(isinstance(m, DeltaLinear) for m in model.modules()):
        raise UserError(f"{type(model).__name__} already holds an adapter: wrap a model only once "
                        "(merge it first to add another on top).")


def inject(model: nn.Module, names: list[str]) -> nn.Module:
    model.requires_grad_(False)
    for name in names:
        parent, _, child = name.rpartition(".")
        owner = model.get_submodule(parent) if parent else model
        setattr(owner, child, DeltaLinear(getattr(owner, child)))
    return model


def _layers(model):
    return [(n, m) for n, m in model.named_modules() if isinstance(m, DeltaLinear)]


def merge(model: nn.Module) -> nn.Module:
    for name, mod in _layers(model):
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, mod.merged())
    return model


def state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    layers = _layers(model)
    if not layers:
        raise UserError(f"{type(model).__name__} holds no ft_layer adapter: call adapter.wrap(model) first.")
    return {f"{n}.delta": m.delta for n, m in layers}


@torch.no_grad()
def clamp(model: nn.Module, bound: float) -> None:
    for _, m in _layers(model):
        m.delta.clamp_(-bound, bound)
