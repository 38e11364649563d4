"""Function-preserving channel rescaling that plants KV outliers in a trained model (GEAR §5.1-B).

For chosen key channels c of a KV head, W_k's output rows are multiplied by α and the matching
rows of W_q (every query head of the group) by 1/α, so q·k is unchanged. RoPE rotates the channel
pairs (c, c + d/2) (HF ``rotate_half``), so both members of a pair get the same α and
RoPE(α·k) = α·RoPE(k) on that pair. Value channels c get α on W_v's rows and 1/α on W_o's input
columns of every query head that reads that KV head. The model computes the same function (up to
float rounding) while its K and V carry channels α times larger than the rest, as real LLMs do.
"""
from __future__ import annotations

import torch


@torch.no_grad()
def rescale_channels(model, alpha: float, pairs: int, seed: int = 0) -> dict[int, torch.Tensor]:
    """Scale ``pairs`` RoPE channel pairs of every KV head of every layer by ``alpha`` (K and V).

    Returns {layer: channels [H_kv, 2·pairs]}. LLaMA-style attention (q/k/v/o_proj) only.
    """
    cfg = model.config
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None or not hasattr(layers[0], "self_attn") or not hasattr(layers[0].self_attn, "k_proj"):
        raise ValueError(f"channel rescaling needs LLaMA-style attention (q_proj/k_proj/v_proj/o_proj); got {cfg.model_type}.")
    Hq = cfg.num_attention_heads
    Hkv = cfg.num_key_value_heads or Hq
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // Hq
    if not 0 < pairs <= d // 2:
        raise ValueError(f"rescale pairs={pairs} must be in [1, head_dim/2 = {d // 2}].")
    rep = Hq // Hkv
    gen = torch.Generator().manual_seed(seed)
    chosen = {}
    for i, layer in enumerate(layers):
        att = layer.self_attn
        base = torch.stack([torch.randperm(d // 2, generator=gen)[:pairs] for _ in range(Hkv)])  # [Hkv, pairs]
        ch = torch.cat([base, base + d // 2], 1)  # both members of each RoPE pair
        chosen[i] = ch
        for h in range(Hkv):
            k_rows = h * d + ch[h]
            q_rows = torch.cat([(h * rep + j) * d + ch[h] for j in range(rep)])
            _scale_rows(att.k_proj, k_rows, alpha)
            _scale_rows(att.q_proj, q_rows, 1 / alpha)
            _scale_rows(att.v_proj, k_rows, alpha)
            att.o_proj.weight[:, q_rows] /= alpha
    return chosen


def _scale_rows(linear, rows, factor):
    linear.weight[rows] *= factor
    if linear.bias is not None:
        linear.bias[rows] *= factor
