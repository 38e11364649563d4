"""Decode attention over a GEAR-compressed cache: the PyTorch twin of the Triton kernel.

One query token per sequence attends over [compressed store ‖ fp16 buffer] without building the
fp16 cache (GEAR §2.10, ../shared/papers/gear.md). With keys X̂_K = D̂_K + S_K + Q_K P_Kᵀ and values
likewise, the softmax scores and the output split into a dense part that reads the packed codes
and small corrections:

    s_t = scale · (q·D̂_K[t] + Q_K[t]·(P_Kᵀ q) + Σ_c q_c δK_{c,t}) + mask_t
    out = Σ_t p_t (D̂_V[t] + Q_V[t] P_Vᵀ + δV_t),       δ = outlier value − D̂ at that position

1. `score_bias` (prologue): the low-rank key term Q_K (P_Kᵀ q), the sparse key term and the
   padding mask as one additive bias per compressed token, O(N·r + #outliers).
2. `core` (the kernel; `attention_triton` on GPU): unpack + dequantise the codes on the fly,
   add the bias, online softmax over the compressed tokens then the buffer; returns the
   unnormalised accumulator, the running max m and sum l, and the compressed tokens' scores.
3. `value_terms` (epilogue): with p̃_t = exp(s_t − m), the low-rank value term Σ_chunks
   (Σ_t p̃_t Q_V[t]) P_Vᵀ and the sparse value term; out = (acc + both) / l.

The twin (CPU) takes one shortcut the kernel cannot: it dequantises each store once per step into
an fp32 tensor anyway, so it writes the outliers into it (D̂ + S exactly) and skips the two sparse
corrections, which would dequantise the outliers' positions a second time (``sparse=False`` in
`score_bias` and `value_terms`); the kernel never holds a dequantised tile and adds them as above.

Shapes: q [B, Hq, d]; stores in the `methods.gear.store.PackedStore` layouts (keys per channel,
values per token); buffer [B, H, nb, d]; mask [B, N + nb] bool (True = attend) or None. GQA: query
head j reads KV head j // (Hq / H). Everything is fp32 inside.
"""
from __future__ import annotations

import torch

from reprolab.kernels.gear import quant


def backbone_at(store, pos: torch.Tensor) -> torch.Tensor:
    """D̂ (the dequantised codes, without outliers) of a packed store at positions ``pos`` [B, R, M]
    within each row, fp32."""
    bits = store.spec.bits
    per = 8 // bits
    pos = pos.long()
    byte = store.codes.gather(-1, pos // per)
    code = ((byte >> ((pos % per) * bits).to(torch.uint8)) & quant.levels(bits)).float()
    if store.spec.layout == "channel":
        col = store.key_group_index()[pos]
    else:
        col = pos // (store.codes.shape[-1] * per // store.scale.shape[-1])
    return code * store.scale.gather(-1, col).float() + store.mn.gather(-1, col).float()  # gather, then widen


def outlier_deltas(store) -> torch.Tensor:
    """δ = stored outlier value − the backbone's dequantised value there ([B, R, M] fp32)."""
    return store.out_val.float() - backbone_at(store, store.out_idx)


def dequantized(store) -> torch.Tensor:
    """D̂ + S of a packed store in its row layout, fp32: every code unpacked and dequantised once, in
    one fused multiply-add where the groups are of equal length (always for values; for keys unless
    chunks of different group sizes were appended), the outliers written in."""
    codes = quant.unpack(store.codes, store.spec.bits)  # uint8
    scale, mn = store.scale.float(), store.mn.float()
    group = store.group_length()
    if group is not None:
        rows = torch.addcmul(mn.unsqueeze(-1), codes.unflatten(-1, (-1, group)), scale.unsqueeze(-1)).flatten(-2)
    else:  # keys of chunks with different group sizes: each token's scale/min column
        col = store.key_group_index()
        rows = torch.addcmul(mn[..., col], codes, scale[..., col])
    if store.out_idx is not None:
        rows.scatter_(-1, store.out_idx.long(), store.out_val.float())
    return rows


def score_bias(q: torch.Tensor, store_k, scaling: float, mask: torch.Tensor | None, sparse: bool = True) -> torch.Tensor:
    """Additive score term of every compressed token, [B, Hq, N] fp32 (see the module docstring);
    ``sparse=False`` leaves the outliers' term out (the twin folds them into its dequantised keys)."""
    B, Hq, d = q.shape
    H, N = store_k.heads, store_k.n_tokens
    rep = Hq // H
    qf = q.float().view(B, H, rep, d)
    bias = q.new_zeros(B, H, rep, N, dtype=torch.float32)
    for start, Qk, Pk in store_k.lowrank:  # Q [B,H,C,n,r], P [B,H,C,d,r]: C chunks of n tokens
        u = torch.einsum("bhgcr,bhjc->bhjgr", Pk.float(), qf)
        span = Qk.shape[2] * Qk.shape[3]
        bias[..., start : start + span] += torch.einsum("bhgtr,bhjgr->bhjgt", Qk.float(), u).flatten(-2)
    if sparse and store_k.out_idx is not None:
        delta = outlier_deltas(store_k).view(B, H, d, -1)  # rows are (head, channel)
        t = store_k.out_idx.long().view(B, H, 1, d * delta.shape[-1]).expand(B, H, rep, -1)
        contrib = (qf.unsqueeze(-1) * delta.unsqueeze(2)).reshape(B, H, rep, -1)
        bias.scatter_add_(-1, t, contrib)
    bias = bias.view(B, Hq, N) * scaling
    if mask is not None:
        bias = bias.masked_fill(~mask[:, None, :N], -torch.inf)
    return bias


def core(q, store_k, store_v, bias, buf_k, buf_v, buf_mask, scaling):
    """Twin of the kernel: (acc [B,Hq,d], m [B,Hq], l [B,Hq], scores [B,Hq,N]) in fp32, over D̂ + S
    (`dequantized`: ``bias`` and `value_terms` then leave the sparse terms out)."""
    B, Hq, d = q.shape
    H = store_k.heads
    rep = Hq // H
    N = store_k.n_tokens
    qf = q.float().view(B, H, rep, d)
    k_hat = dequantized(store_k).view(B, H, d, N)
    v_hat = dequantized(store_v).view(B, N, H, d).permute(0, 2, 1, 3)  # [B, H, N, d]
    s = torch.einsum("bhjc,bhct->bhjt", qf, k_hat).reshape(B, Hq, N) * scaling + bias
    sb = torch.einsum("bhjc,bhtc->bhjt", qf, buf_k.float()).reshape(B, Hq, -1) * scaling
    if buf_mask is not None:
        sb = sb.masked_fill(~buf_mask[:, None, :], -torch.inf)
    m = torch.maximum(s.amax(-1), sb.amax(-1))
    m_safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p, pb = torch.exp(s - m_safe[..., None]), torch.exp(sb - m_safe[..., None])
    l = p.sum(-1) + pb.sum(-1)
    acc = torch.einsum("bhjt,bhtc->bhjc", p.view(B, H, rep, N), v_hat)
    acc = acc + torch.einsum("bhjt,bhtc->bhjc", pb.view(B, H, rep, -1), buf_v.float())
    return acc.reshape(B, Hq, d), m, l, s


def value_terms(store_v, scores: torch.Tensor, m: torch.Tensor, d: int, sparse: bool = True) -> torch.Tensor:
    """Σ_t p̃_t (Q_V[t] P_Vᵀ + δV_t), [B, Hq, d] fp32, with p̃ = exp(scores − m); ``sparse=False``
    leaves δV out (the twin's core read D̂ + S)."""
    B, Hq, N = scores.shape
    H = store_v.heads
    rep = Hq // H
    m_safe = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    p = torch.exp(scores - m_safe[..., None]).view(B, H, rep, N)
    out = scores.new_zeros(B, H, rep, d)
    for start, Qv, Pv in store_v.lowrank:  # Q [B,H,C,n,r], P [B,H,C,d,r]: C chunks of n tokens
        C, n = Qv.shape[2], Qv.shape[3]
        w = torch.einsum("bhjgt,bhgtr->bhjgr", p[..., start : start + C * n].unflatten(-1, (C, n)), Qv.float())
        out += torch.einsum("bhjgr,bhgcr->bhjc", w, Pv.float())
    if sparse and store_v.out_idx is not None:
        delta = outlier_deltas(store_v)  # [B, N, M]
        ch = store_v.out_idx.long()  # channel in the H*d token vector
        head = ch // d
        M = ch.shape[-1]
        # p̃ of token t for every query head j of the outlier's KV head
        pt = p.permute(0, 3, 1, 2)  # [B, N, H, rep]
        w = torch.gather(pt, 2, head.unsqueeze(-1).expand(B, N, M, rep))  # [B, N, M, rep]
        contrib = (w * delta.unsqueeze(-1)).permute(0, 3, 1, 2).reshape(B, rep, N * M)  # [B, rep, N*M]
        flat = out.permute(0, 2, 1, 3).reshape(B, rep, H * d)
        flat = flat.scatter_add(-1, ch.reshape(B, 1, N * M).expand(B, rep, N * M), contrib)
        out = flat.view(B, rep, H, d).permute(0, 2, 1, 3)
    return out.reshape(B, Hq, d)


def decode_attention(q, store_k, store_v, buf_k, buf_v, scaling, mask=None, backend="torch"):
    """Attention output [B, Hq, d] (fp32) of one query per sequence over a compressed cache.

    backend: ``torch`` (this twin) or ``triton`` (`reprolab.kernels.gear.attention_triton.core`).
    """
    N = store_k.n_tokens
    sparse = backend == "triton"  # the twin's core reads D̂ + S (module docstring)
    bias = score_bias(q, store_k, scaling, mask, sparse)
    buf_mask = None if mask is None else mask[:, N:]
    if backend == "triton":
        from reprolab.kernels.gear.attention_triton import core as core_impl
    else:
        core_impl = core
    acc, m, l, s = core_impl(q, store_k, store_v, bias, buf_k, buf_v, buf_mask, scaling)
    return (acc + value_terms(store_v, s, m, q.shape[-1], sparse)) / l[..., None]
