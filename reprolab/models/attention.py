"""The model's one attention hook: the KV cache's attention (or the model's own) with the steering's
score edit added, so a compressed cache and attention steering act in the same forward (GEAR + PASTA).

`install(model, kv_cache, steering)` runs after the adapter and the temperature (the fixed order of
`reprolab.models.assemble`). The steering needs to know which tokens are highlighted: wrap each
forward or generation in ``with highlighting(model, mask):`` (a ``(batch, prompt_len)`` bool mask);
outside it, or at a steering's identity setting, the attention is the base function's, bit for bit.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch

from reprolab.checks import ConfigError

# Attention functions that read the cache's own compressed state: they cannot take an additive bias.
_OPAQUE = {"gear_fused": "kv_cache.attention=materialize", "h2o": "a kv_cache that keeps every token (fp16, kivi, gear)"}


def install(model: torch.nn.Module, kv_cache=None, steering=None) -> None:
    """Set the cache's attention function on ``model`` and, with a steering, wrap it so that the
    steering's score bias is added to the attention mask of every layer it edits."""
    if kv_cache is not None:
        kv_cache.prepare_model(model)
    if steering is None:
        return
    steering.check_model(model.config)
    base_name = model.config._attn_implementation or "eager"
    if base_name in _OPAQUE:
        raise ConfigError(f"steering={steering.registered_name} edits attention scores, and the {base_name!r} attention "
                          f"of the kv_cache reads its compressed store directly: use {_OPAQUE[base_name]}.")
    if base_name.startswith("steered:"):
        raise ConfigError("the model's attention is already steered: install one steering per model.")
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.models.llama.modeling_llama import eager_attention_forward

    base = {"sdpa": sdpa_attention_forward, "eager": eager_attention_forward}.get(base_name)
    if base is None:  # flash attention takes no 4D mask (a bias would be ignored silently), flex a block mask
        raise ConfigError(f"steering={steering.registered_name} adds a score bias through the attention mask, and the "
                          f"model's {base_name!r} attention takes no additive float mask: load the model with "
                          "attn_implementation='sdpa' or 'eager' (model.set_attn_implementation('sdpa')).")

    def steered(module, query, key, value, attention_mask, **kwargs):
        highlight = model.__dict__.get("_highlight")
        if highlight is not None:
            bias = steering.score_bias(module.layer_idx, query.shape[1], key.shape[-2], highlight)
            if bias is not None:
                attention_mask = with_bias(attention_mask, bias.to(query.dtype), query, key)
        return base(module, query, key, value, attention_mask, **kwargs)

    name = f"steered:{base_name}"
    AttentionInterface.register(name, steered)
    AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base_name])  # the base's own masks
    model.set_attn_implementation(name)


def with_bias(mask, bias: torch.Tensor, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """The attention mask plus the score bias, as one float tensor: one op when the mask is boolean, none
    for a single query row without a mask (a decoding step attends to every key)."""
    if mask is None and query.shape[-2] == 1:
        return bias
    if mask is not None and mask.dtype == torch.bool:
        return torch.where(mask[..., : key.shape[-2]], bias, float("-inf"))
    return additive_mask(mask, query, key) + bias


def additive_mask(mask, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
    """The attention mask as an additive float tensor ``(B or 1, 1, q, k)``: 0 where a query may attend,
    -inf elsewhere; a missing mask is the causal one (the last q queries of a k-long sequence)."""
    q, k = query.shape[-2], key.shape[-2]
    if mask is None:
        mask = torch.ones(q, k, dtype=torch.bool, device=query.device).tril(k - q)[None, None]
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=query.dtype, device=query.device).masked_fill(~mask, float("-inf"))
    return mask[..., :k].to(query.dtype)


@contextmanager
def highlighting(model: torch.nn.Module, highlight: torch.Tensor | None):
    """Steer the forwards inside the block towards the highlighted prompt tokens (``(batch, prompt_len)``
    bool); generated tokens (key positions beyond the prompt) are never scaled."""
    before = model.__dict__.get("_highlight")
    model.__dict__["_highlight"] = highlight
    try:
        yield model
    finally:
        model.__dict__["_highlight"] = before
