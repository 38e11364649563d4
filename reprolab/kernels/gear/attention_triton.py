"""Triton kernel: decode attention over packed GEAR/KIVI codes (the core of `reprolab.kernels.gear.attention`).

One program per (sequence, query head). It walks the compressed tokens in blocks of BLOCK_N:
unpacks the key codes of the head's d channels (keys are stored per channel: byte t // per of row
h·d + c), dequantises with the per-(channel, token-group) fp16 scale/min, adds the precomputed score
bias (low-rank + sparse key terms + mask), writes the scores, and updates an online softmax
(running max m, sum l) and the accumulator with the dequantised values (stored per token: byte
(h·d + c) // per of row t). Then it does the same over the fp16 buffer. Returns acc, m, l and the
scores; the twin `reprolab.kernels.gear.attention.core` defines the exact semantics.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _decode_kernel(Qp, KC, KS, KM, KCOL, VC, VS, VM, BIAS, KB, VB, BMASK, ACC, M, L, SC,
                   N, NB, HQ, REP, NGK, NGV, scaling,
                   s_kb_b, s_kb_h, s_kb_t, s_vb_b, s_vb_h, s_vb_t,
                   D: tl.constexpr, BITS: tl.constexpr, GV: tl.constexpr,
                   BLOCK_N: tl.constexpr, HAS_BMASK: tl.constexpr):
    pid = tl.program_id(0)
    b = pid // HQ
    qh = pid % HQ
    h = qh // REP
    H = HQ // REP
    PER: tl.constexpr = 8 // BITS
    LEVELS: tl.constexpr = (1 << BITS) - 1
    c = tl.arange(0, D)
    q = tl.load(Qp + pid * D + c).to(tl.float32)
    m = tl.max(tl.full([BLOCK_N], float("-inf"), tl.float32), axis=0)
    l = tl.sum(tl.zeros([BLOCK_N], tl.float32), axis=0)
    acc = tl.zeros([D], tl.float32)
    rows = h * D + c  # key rows / value columns of this head
    b64 = b.to(tl.int64)
    for start in range(0, N, BLOCK_N):
        t = start + tl.arange(0, BLOCK_N)
        tin = t < N
        # keys: [D, BLOCK_N]
        kbyte = tl.load(KC + b64 * (H * D) * (N // PER) + rows[:, None] * (N // PER) + (t // PER)[None, :],
                        mask=tin[None, :], other=0).to(tl.int32)
        kcode = ((kbyte >> ((t % PER) * BITS)[None, :]) & LEVELS).to(tl.float32)
        col = tl.load(KCOL + t, mask=tin, other=0)
        kidx = b64 * (H * D) * NGK + rows[:, None] * NGK + col[None, :]
        ks = tl.load(KS + kidx, mask=tin[None, :], other=0.0).to(tl.float32)
        km = tl.load(KM + kidx, mask=tin[None, :], other=0.0).to(tl.float32)
        k = kcode * ks + km
        s = tl.sum(q[:, None] * k, axis=0) * scaling
        s += tl.load(BIAS + pid.to(tl.int64) * N + t, mask=tin, other=0.0)
        s = tl.where(tin, s, float("-inf"))
        tl.store(SC + pid.to(tl.int64) * N + t, s, mask=tin)
        m_new = tl.maximum(m, tl.max(s, axis=0))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m - m_safe)
        p = tl.exp(s - m_safe)
        # values: [BLOCK_N, D]
        vbyte = tl.load(VC + b64 * N * (H * D // PER) + t[:, None] * (H * D // PER) + (rows // PER)[None, :],
                        mask=tin[:, None], other=0).to(tl.int32)
        vcode = ((vbyte >> ((rows % PER) * BITS)[None, :]) & LEVELS).to(tl.float32)
        vidx = b64 * N * NGV + t[:, None] * NGV + (rows // GV)[None, :]
        vs = tl.load(VS + vidx, mask=tin[:, None], other=0.0).to(tl.float32)
        vm = tl.load(VM + vidx, mask=tin[:, None], other=0.0).to(tl.float32)
        v = vcode * vs + vm
        acc = acc * alpha + tl.sum(p[:, None] * v, axis=0)
        l = l * alpha + tl.sum(p, axis=0)
        m = m_new
    for start in range(0, NB, BLOCK_N):
        t = start + tl.arange(0, BLOCK_N)
        tin = t < NB
        k = tl.load(KB + b64 * s_kb_b + h * s_kb_h + t[None, :] * s_kb_t + c[:, None], mask=tin[None, :], other=0.0).to(tl.float32)
        s = tl.sum(q[:, None] * k, axis=0) * scaling
        if HAS_BMASK:
            keep = tl.load(BMASK + b64 * NB + t, mask=tin, other=0)
            s = tl.where(keep != 0, s, float("-inf"))
        s = tl.where(tin, s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, axis=0))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m - m_safe)
        p = tl.exp(s - m_safe)
        v = tl.load(VB + b64 * s_vb_b + h * s_vb_h + t[:, None] * s_vb_t + c[None, :], mask=tin[:, None], other=0.0).to(tl.float32)
        acc = acc * alpha + tl.sum(p[:, None] * v, axis=0)
        l = l * alpha + tl.sum(p, axis=0)
        m = m_new
    tl.store(ACC + pid * D + c, acc)
    tl.store(M + pid, m)
    tl.store(L + pid, l)


def core(q, store_k, store_v, bias, buf_k, buf_v, buf_mask, scaling, block_n: int = 32):
    """Same contract as `reprolab.kernels.gear.attention.core`: (acc, m, l, scores), fp32."""
    B, Hq, d = q.shape
    H, N = store_k.heads, store_k.n_tokens
    bits = store_k.spec.bits
    if store_v.spec.bits != bits:
        raise ValueError("the decode kernel needs keys and values quantised with the same bits.")
    if d & (d - 1):
        raise ValueError(f"head_dim={d} must be a power of two for the decode kernel.")
    NB = buf_k.shape[2]
    gv = (H * d) // store_v.scale.shape[-1]
    dev = q.device
    acc = torch.empty(B, Hq, d, dtype=torch.float32, device=dev)
    m = torch.empty(B, Hq, dtype=torch.float32, device=dev)
    l = torch.empty(B, Hq, dtype=torch.float32, device=dev)
    scores = torch.empty(B, Hq, N, dtype=torch.float32, device=dev)
    kcol = store_k.key_group_index(torch.int32)
    bmask = buf_mask.to(torch.int8).contiguous() if buf_mask is not None else acc
    _decode_kernel[(B * Hq,)](
        q.float().contiguous(), store_k.codes.contiguous(), store_k.scale.contiguous(), store_k.mn.contiguous(), kcol,
        store_v.codes.contiguous(), store_v.scale.contiguous(), store_v.mn.contiguous(), bias.float().contiguous(),
        buf_k, buf_v, bmask, acc, m, l, scores,
        N, NB, Hq, Hq // H, store_k.scale.shape[-1], store_v.scale.shape[-1], float(scaling),
        buf_k.stride(0), buf_k.stride(1), buf_k.stride(2), buf_v.stride(0), buf_v.stride(1), buf_v.stride(2),
        D=d, BITS=bits, GV=gv, BLOCK_N=block_n, HAS_BMASK=buf_mask is not None,
    )
    return acc, m, l, scores
