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


def optimizer_state_bytes(optimizer: torch.optim.Optimizer, params=None, skip: tuple[str, ...] = ()) -> int:
    """Bytes held in the optimizer's state tensors (moments, preconditioners, bases), measured: only
    ``params``' state when given; keys in ``skip`` left out (e.g. torch AdamW's ``step`` tensor)."""
    states = optimizer.state.values() if params is None else (optimizer.state[p] for p in params)
    return sum(v.numel() * v.element_size() for s in states for k, v in s.items()
               if isinstance(v, torch.Tensor) and k not in skip)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices (dim >= 2) decay, gains and biases (dim < 2) do not (nanoGPT's rule)."""
    params = trainable(model)
    decay = [p for _, p in params if p.dim() >= 2]
    no_decay = [p for _, p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def count(groups: list[dict]) -> int:
    return sum(p.numel() for g in groups for p in g["params"] if isinstance(p, torch.Tensor))


def hidden_matrices(model: nn.Module) -> tuple[list[tuple[str, nn.Parameter]], list[tuple[str, nn.Parameter]]]:
    """Split the trainable parameters into (hidden weight matrices, the rest).

    Hidden matrices are the 2-D weights other than the input embedding and the output head: the
    attention and MLP projections of a transformer (GaLore's ``["attn", "mlp"]`` targets). The
    rest are embeddings, the head, gains and biases. Matrix optimizers (Muon, COSMOS, GaLore) use
    this to send the rest to their AdamW branch by name, not by shape: the official COSMOS shape
    rule (``ndim == 2 and size(0) <= 10000``) would put a small vocabulary's embedding and head
    into the matrix branch. A vector held as an (n, 1) or (1, n) tensor (AdaLoRA's singular values
    ``lora_E``) is not a matrix: it goes with the rest. Frozen tensors are in neither list.
    """
    skip = embedding_and_head_names(model)
    params = trainable(model)
    hidden = [(n, p) for n, p in params if p.dim() == 2 and min(p.shape) > 1 and n not in skip]
    hidden_ids = {id(p) for _, p in hidden}
    return hidden, [(n, p) for n, p in params if id(p) not in hidden_ids]


def matrix_branch_groups(model: nn.Module, flag: str, matrix_options: dict, aux_options: dict) -> list[dict]:
    """Param groups for an optimizer with a matrix branch and an AdamW branch (Muon, COSMOS).

    Hidden matrices (`hidden_matrices`) get ``{flag: True, **matrix_options}``; embeddings and the
    head ``{flag: False, **aux_options}``; gains and biases the same with ``weight_decay: 0``
    (`decay_groups`' rule: no decay below 2-D).
    """
    hidden, rest = hidden_matrices(model)
    groups = [
        {"params": [p for _, p in hidden], flag: True, **matrix_options},
        {"params": [p for _, p in rest if p.dim() >= 2], flag: False, **aux_options},
        {"params": [p for _, p in rest if p.dim() < 2], flag: False, **aux_options, "weight_decay": 0.0},
    ]
    return [g for g in groups if g["params"]]
