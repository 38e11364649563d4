"""The ``gear_fused`` attention function: decode attention straight from the packed cache.

Registered with transformers' `AttentionInterface` (and the SDPA mask builder) by `register()`;
`QuantCache.prepare_model` sets it on a model when ``attention="fused"``. At decode steps (one
query token) the `CompressedLayer` passes itself as ``gear_layer`` and returns only its fp16 buffer
as key/value; this function attends over [packed store ‖ buffer] with `reprolab.kernels.gear.attention`
(the Triton kernel on CUDA, its PyTorch twin elsewhere). Prefill, and any call without a
compressed store, is ordinary SDPA.
"""
from __future__ import annotations

import torch


def gear_fused_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, gear_layer=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if gear_layer is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    gear_layer.consumed = True
    store_k, store_v = gear_layer.store_k, gear_layer.store_v
    B, Hq, q_len, d = query.shape
    if q_len > 1:  # several new tokens at once: decompress (rare: chunked prefill / forced multi-token steps)
        k = torch.cat([store_k.materialize().to(key.dtype), key], 2)
        v = torch.cat([store_v.materialize().to(value.dtype), value], 2)
        return sdpa_attention_forward(module, query, k, v, attention_mask, dropout=dropout, scaling=scaling, **kwargs)
    from reprolab.kernels.gear.attention import decode_attention

    mask = None
    if attention_mask is not None:
        mask = attention_mask[:, 0, -1, :]
        if mask.dtype != torch.bool:
            mask = mask == 0
    scaling = d**-0.5 if scaling is None else scaling
    backend = "triton" if query.is_cuda else "torch"
    out = decode_attention(query[:, :, 0], store_k, store_v, key, value, scaling, mask, backend=backend)
    return out.to(query.dtype)[:, None], None


def register() -> None:
    """Register ``gear_fused`` with transformers' attention and mask interfaces (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register("gear_fused", gear_fused_attention)
    AttentionMaskInterface.register("gear_fused", sdpa_mask)
