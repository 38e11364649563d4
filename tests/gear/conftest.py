"""Fixtures of the GEAR tests: tiny models and structured synthetic KV tensors."""
from __future__ import annotations

import torch


def tiny_llama(kv_heads=2, layers=2, hidden=64, heads=4, vocab=64, seed=0, **kw):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, **kw)
    return LlamaForCausalLM(cfg).eval()


def structured_kv(B=2, H=4, n=128, d=32, seed=0, outlier_channels=(3,), scale=8.0):
    """Keys with low-rank structure, a few outlier channels and spikes (GEAR §5.1-A style)."""
    g = torch.Generator().manual_seed(seed)
    U = torch.randn(B, H, n, 4, generator=g)
    V = torch.randn(B, H, 4, d, generator=g)
    x = U @ V + 0.5 * torch.randn(B, H, n, d, generator=g)
    for c in outlier_channels:
        x[..., c] *= scale
    spikes = torch.rand(B, H, n, d, generator=g) < 0.002
    return x + spikes * 20 * torch.randn(B, H, n, d, generator=g)
