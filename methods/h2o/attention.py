"""The ``h2o`` attention function: eager attention that reports its probabilities to the H2O cache."""
from __future__ import annotations

import torch


def h2o_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, h2o_layer=None, **kwargs):
    """Same math as transformers' eager attention; query [B, Hq, q, d], key/value [B, Hkv, S, d].

    After eviction the stored keys no longer line up with the HF mask's columns, so the layer's
    own ``valid`` mask is used instead (decode steps attend to every kept key).
    """
    B, Hq, q_len, d = query.shape
    n_rep = Hq // key.shape[1]
    k = key.repeat_interleave(n_rep, 1)
    v = value.repeat_interleave(n_rep, 1)
    scaling = d**-0.5 if scaling is None else scaling
    scores = (query @ k.transpose(-1, -2)).float() * scaling
    S = k.shape[2]
    key_mask = None
    if h2o_layer is not None and h2o_layer.pruned:
        scores = scores.masked_fill(~h2o_layer.valid.repeat_interleave(n_rep, 1)[:, :, None, :], -torch.inf)
    elif attention_mask is not None:
        mask = attention_mask[..., -S:]
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, -torch.inf)
            key_mask = mask[:, 0, -1, :]  # what the last query may see: all non-padding keys
        else:
            scores = scores + mask
            key_mask = mask[:, 0, -1, :] == 0
    elif q_len > 1:  # no mask given: plain causal attention
        causal = torch.ones(q_len, S, dtype=torch.bool, device=query.device).tril(S - q_len)
        scores = scores.masked_fill(~causal, -torch.inf)
    probs = torch.softmax(scores, -1)
    out = (probs.to(v.dtype) @ v).transpose(1, 2).contiguous()
    if h2o_layer is not None:
        h2o_layer.observe(probs, key_mask)
    return out, None


def register() -> None:
    """Register ``h2o`` with transformers' attention and mask interfaces (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register("h2o", h2o_attention)
    AttentionMaskInterface.register("h2o", sdpa_mask)
