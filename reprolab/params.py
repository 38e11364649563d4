"""Parameter routing shared by optimizer methods: decay / no-decay, embeddings and heads."""
from __future__ import annotations

import torch
from torch import nn


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def embedding_and_head_names(model: nn.Module) -> set[str]:
    """Names of the input embedding and output head weights (nn.Embedding, HF get_output_embeddings)."""
    names = {f"{m}.weight" if m else "weight" for m, mod in model.named_modules() if isinstance(mod, nn.Embedding)}
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is not None:
        ids = {id(head.weight)}
        names |= {n for n, p in model.named_parameters() if id(p) in ids}
    return names


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices (dim >= 2) decay, gains and biases (dim < 2) do not (nanoGPT's rule)."""
    params = trainable(model)
    decay = [p for _, p in params if p.dim() >= 2]
    no_decay = [p for _, p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def count(groups: list[dict]) -> int:
    return sum(p.numel() for g in groups for p in g["params"] if isinstance(p, torch.Tensor))
