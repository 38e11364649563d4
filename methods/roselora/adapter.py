"""RoseLoRA in a plain `transformers` model: peft's LoRA layers plus a `RowColumnPruner`.

Why peft LoRA and not a new peft tuner or ``LoraVariant``: a variant changes a layer's forward and
merge (DoRA's magnitude), and RoseLoRA changes neither: y = W0 x + s B A x, merged as W0 + s B A,
its sparsity lives in the *values* of A and B. What is new is a training step across all adapted
layers (importance EMAs, then per-row / per-column pruning, batched over layers of one shape),
which peft also keeps outside its layers for AdaLoRA (``RankAllocator`` on the tuner, driven by
``update_and_allocate``). So the layers, merge / unmerge and the saved tensors are exactly peft
LoRA's (``lora_A`` / ``lora_B`` keys; a RoseLoRA adapter loads into peft as a ``LoraConfig`` one),
and the pruner sits beside peft's tuner in the model's ``__dict__`` (not a submodule: its state is
neither parameters nor state-dict entries; the lm runner checkpoints it through the adapter role's
``train_state_dict``).
"""
from __future__ import annotations

import torch
from peft.tuners.lora import Linear as LoraLinear

from methods.lora import tuner
from methods.roselora.pruning import RowColumnPruner
from reprolab.checks import UserError

_PRUNER_ATTR = "_roselora_pruner"


def inject(model: torch.nn.Module, cfg) -> torch.nn.Module:
    """peft LoRA layers on ``cfg.target_modules`` (``cfg.peft_config()``) and a pruner over them."""
    tuner.inject(model, cfg.peft_config())
    layers = lora_layers(model)
    model.__dict__[_PRUNER_ATTR] = RowColumnPruner(
        layers, tuner.ADAPTER_NAME, beta1=cfg.beta1, beta2=cfg.beta2, use_uncertainty=cfg.use_uncertainty,
        selection=cfg.selection, clamp=cfg.clamp)
    return model


def lora_layers(model: torch.nn.Module) -> dict[str, LoraLinear]:
    layers = {name: mod for name, mod in model.named_modules() if isinstance(mod, LoraLinear)}
    if not layers:
        raise UserError(f"{type(model).__name__} has no LoRA linear layer: RoseLoRA adapts nn.Linear layers "
                        "(transformers' Conv1D of GPT-2 is not supported).")
    return layers


def pruner_of(model: torch.nn.Module) -> RowColumnPruner:
    pruner = model.__dict__.get(_PRUNER_ATTR)
    if pruner is None:
        raise UserError(f"{type(model).__name__} holds no RoseLoRA adapter: call adapter.wrap(model) first.")
    return pruner


def merge(model: torch.nn.Module) -> torch.nn.Module:
    """Fold ΔW = s B A into the base weights (peft's merge) and drop the adapter and its pruner."""
    merged = tuner.merge(model)
    model.__dict__.pop(_PRUNER_ATTR, None)
    return merged


@torch.no_grad()
def delta_density(model: torch.nn.Module) -> dict[str, float]:
    """Measured sparsity of the update: ``density`` = nnz(B A) / (out·in) over all adapted layers,
    ``bound`` = Σ_i density(B_:,i)·density(A_i,:) averaged the same way (§2.1; <= r ρ²), and the
    fraction of nonzero adapter parameters ``param_density``."""
    nnz = numel = bound = p_nnz = p_numel = 0
    for layer in lora_layers(model).values():
        a = layer.lora_A[tuner.ADAPTER_NAME].weight.float()
        b = layer.lora_B[tuner.ADAPTER_NAME].weight.float()
        out, inp = b.shape[0], a.shape[1]
        nnz += int(((b @ a) != 0).sum())
        numel += out * inp
        bound += float((((b != 0).sum(0).float() / out) * ((a != 0).sum(1).float() / inp)).sum()) * out * inp
        p_nnz += int((a != 0).sum() + (b != 0).sum())
        p_numel += a.numel() + b.numel()
    return {"density": nnz / numel, "bound": bound / numel, "param_density": p_nnz / p_numel}
