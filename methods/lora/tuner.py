"""peft's tuners put into a plain `transformers` model: the implementation behind `methods.lora.config`.

We build peft's tuner class for the config (``LoraModel`` for LoRA and DoRA, ``AdaLoraModel`` for
AdaLoRA) on the model, exactly as ``peft.inject_adapter_in_model`` does, and keep the model it
mutates: a ``LlamaForCausalLM`` stays a ``LlamaForCausalLM`` whose ``q_proj`` / ``v_proj`` are peft
LoRA layers. ``get_peft_model`` would instead hand back a ``PeftModel`` wrapper (its parameters
renamed under ``base_model.model.``, ``generate`` and attributes forwarded), which the Lightning
module, the generation code, the attention hook and `reprolab.params`' name routing would all
have to see through. Unlike ``inject_adapter_in_model`` we keep the tuner object (in the model's
``__dict__``, not as a submodule, so it is neither a parameter owner nor a state-dict entry):
AdaLoRA's rank allocator lives on it, and ``merge_and_unload`` is its method.

As ``get_peft_model`` does, adapter weights of a half-precision model are kept in fp32
(peft's ``autocast_adapter_dtype``).
"""
from __future__ import annotations

import torch
from peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer, check_target_module_exists

from reprolab.checks import UserError

ADAPTER_NAME = "default"  # peft's adapter name; it appears in the adapter's state-dict keys
_TUNER_ATTR = "_adapter_tuner"


def inject(model: torch.nn.Module, peft_config) -> torch.nn.Module:
    """Inject the adapter ``peft_config`` describes into ``model`` (in place); only its tensors train."""
    check_unwrapped(model)
    # transformers' Conv1D (GPT-2) stores its weight transposed: tell peft, as it would otherwise warn per layer
    peft_config.fan_in_fan_out = any(type(mod).__name__ == "Conv1D" and check_target_module_exists(peft_config, name)
                                     for name, mod in model.named_modules())
    tuner_cls = PEFT_TYPE_TO_TUNER_MAPPING[peft_config.peft_type]
    tuner = tuner_cls(model, peft_config, adapter_name=ADAPTER_NAME)
    tuner._cast_adapter_dtype(adapter_name=ADAPTER_NAME, autocast_adapter_dtype=True)
    model.__dict__[_TUNER_ATTR] = tuner
    return model


def check_unwrapped(model: torch.nn.Module) -> None:
    if _TUNER_ATTR in model.__dict__ or any(isinstance(m, BaseTunerLayer) for m in model.modules()):
        raise UserError(f"{type(model).__name__} already holds an adapter: wrap a model only once "
                        "(merge it first to add another on top).")


def tuner_of(model: torch.nn.Module) -> BaseTuner:
    tuner = model.__dict__.get(_TUNER_ATTR)
    if tuner is None:
        raise UserError(f"{type(model).__name__} holds no adapter: call adapter.wrap(model) first.")
    return tuner


def merge(model: torch.nn.Module) -> torch.nn.Module:
    """Fold the adapter into the base weights and remove the adapter layers (in place)."""
    merged = tuner_of(model).merge_and_unload(safe_merge=True)
    del model.__dict__[_TUNER_ATTR]
    return merged


def adapter_state_dict(model: torch.nn.Module, bias: str) -> dict[str, torch.Tensor]:
    """The adapter's entries of ``model.state_dict()``: everything inside peft's adapter layers but their
    ``base_layer``, plus the biases the adapter trains (``bias``: peft's none / all / lora_only)."""
    tuner_of(model)
    layers = {name for name, mod in model.named_modules() if isinstance(mod, BaseTunerLayer)}
    out = {}
    for key, value in model.state_dict().items():
        owner = next((name for name in layers if key.startswith(name + ".")), None)
        in_base = owner is not None and key.startswith(f"{owner}.base_layer.")
        if (owner is not None and not in_base) or _trained_bias(key, in_base, bias):
            out[key] = value
    return out


def _trained_bias(key: str, in_adapted_layer: bool, bias: str) -> bool:
    return key.endswith(".bias") and (bias == "all" or (bias == "lora_only" and in_adapted_layer))


def rank_allocation_step(model: torch.nn.Module, step: int, total_step: int) -> None:
    """AdaLoRA: update the importance scores and mask the singular values to the step's budget (peft's
    ``update_and_allocate``; the budget schedule reads ``total_step``)."""
    tuner = tuner_of(model)
    tuner.peft_config[ADAPTER_NAME].total_step = total_step
    tuner.update_and_allocate(step)


def orthogonal_penalty(model: torch.nn.Module) -> torch.Tensor:
    """AdaLoRA's regulariser R(P, Q), as peft's ``AdaLoraModel.forward`` adds it to the loss: the mean over
    the adapted layers' P and Q of ``||P^T P - I||_F`` (Q: ``||Q Q^T - I||_F``); peft's Frobenius norms are
    not squared, unlike the paper's eq. 4."""
    from peft.tuners.adalora.layer import AdaLoraLayer

    terms = []
    for mod in model.modules():
        if isinstance(mod, AdaLoraLayer) and ADAPTER_NAME in mod.lora_A:
            q, p = mod.lora_A[ADAPTER_NAME], mod.lora_B[ADAPTER_NAME]  # Q: (r, in), P: (out, r)
            for gram in (q @ q.T, p.T @ p):
                terms.append(torch.linalg.matrix_norm(gram - torch.eye(gram.shape[0], dtype=gram.dtype,
                                                                       device=gram.device)))
    return torch.stack(terms).mean()
