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
    """Divide the output head's logits by tau, tau read from the hidden states the head reads or (TempNet,
    ``temperature.reads == "logits"``) from the logits themselves: training, evaluation and every decoding
    path see the tempered logits. The tau network becomes a submodule (``model.temperature``), so its
    parameters train and are checkpointed with the model; ``temperature.trains_alone()`` freezes the rest.
    A contrastive dual encoder (``reads == "embedding"``) gets the submodule only: its objective divides
    each anchor's similarities by the anchor's tau."""
    from reprolab.checks import ConfigError

    name = temperature.registered_name
    if temperature.reads == "embedding":
        if not hasattr(model, "embed_dim"):
            raise ConfigError(f"temperature={name} reads the embeddings of a contrastive dual encoder, and "
                              f"{type(model).__name__} is not one: use it with model=clip_mlp (data=gmm_pairs), or pick "
                              "temperature=tempnet for a causal LM.")
        tau = temperature.module(model.embed_dim)
    else:
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if head is None:
            raise ConfigError(f"temperature={name}: {type(model).__name__} has no output head "
                              "(get_output_embeddings() is None) to divide by tau; use a causal LM.")
        reads_logits = temperature.reads == "logits"
        tau = temperature.module(head.out_features if reads_logits else model.config.hidden_size)
        if hasattr(tau, "temper"):  # TempNet: logits / tau(logits), fused at a decode step (methods/tempnet/module.py)
            head.register_forward_hook(lambda _, args, logits: tau.temper(logits))
        else:
            head.register_forward_hook(lambda _, args, logits: logits / tau(logits if reads_logits else args[0]).to(logits.dtype))
    if temperature.trains_alone():
        trainable = [p for p in tau.parameters() if p.requires_grad]
        model.requires_grad_(False)
        for p in trainable:
            p.requires_grad_(True)
    model.add_module("temperature", tau.train(model.training))  # TempNet's dropout follows the model's mode
