"""One constructor per plain optimizer, so every test can meet every optimizer (kozistr-style)."""
from __future__ import annotations

import torch
from torch import nn

from methods.adam_mini import AdamMini
from methods.cosmos import COSMOS
from methods.galore import GaLoreAdamW
from methods.muon import Muon
from methods.soap import SOAP


class Tiny(nn.Module):
    """A 12 x 8 matrix, its bias and a gain: one tensor for each branch of every optimizer."""

    def __init__(self, dtype=torch.float32):
        super().__init__()
        self.proj = nn.Linear(8, 12).to(dtype)
        self.norm = nn.Parameter(torch.ones(12, dtype=dtype))

    def forward(self, x):
        return self.proj(x) * self.norm


def _galore(model, rank=4, **kw):
    return GaLoreAdamW([{"params": [model.proj.weight], "rank": rank, "update_proj_gap": 5},
                        {"params": [model.proj.bias, model.norm]}], **kw)


FACTORIES = {
    "cosmos": lambda model, rank=4, **kw: COSMOS(model.parameters(), rank=rank, **kw),
    "muon": lambda model, **kw: Muon(model.parameters(), **kw),
    "soap": lambda model, **kw: SOAP(model.parameters(), **kw),
    "galore": _galore,
    "adam_mini": lambda model, **kw: AdamMini(model.named_parameters(), **kw),
}
