"""A model's role hooks, always in one order (issue 14): weights (built or loaded) -> adapter ->
temperature -> one attention hook (KV cache + steering) -> the optimizer over what is trainable."""
from __future__ import annotations

import copy

import torch


def assemble(model: torch.nn.Module, roles) -> torch.nn.Module:
    """``model`` with the run's adapter (only its parameters trainable when it says so) and
    temperature attached; the attention hook is installed where a model decodes
    (`reprolab.models.attention`)."""
    if roles.adapter is not None:
        model = roles.adapter.wrap(model)
    if roles.temperature is not None:
        attach_temperature(model, roles.temperature)
    return model


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A reference model: the weights as they are now, in eval mode, without gradients."""
    return copy.deepcopy(model).eval().requires_grad_(False)


def attach_temperature(model: torch.nn.Module, temperature) -> None:
    """Divide the output head's logits by tau(h), h the hidden states the head reads: training,
    evaluation and every decoding path see the tempered logits. The tau network becomes a
    submodule (``model.temperature``), so its parameters train and are checkpointed with the model."""
    head = model.get_output_embeddings()
    if head is None:
        from reprolab.checks import ConfigError

        raise ConfigError(f"temperature={temperature.registered_name}: {type(model).__name__} has no output head "
                          "(get_output_embeddings() is None) to divide by tau; use a causal LM.")
    tau = temperature.module(model.config.hidden_size)
    model.add_module("temperature", tau)
    head.register_forward_hook(lambda _, args, logits: logits / tau(args[0]).to(logits.dtype))
