"""Triton kernel: group-wise asymmetric quantisation + bit packing (+ optional residual).

Semantics are those of the PyTorch twin `reprolab.kernels.gear.quant.quantize_pack` (fp16 scale/min,
round half to even, codes packed low bits first); the codes match it bit for bit. One program
quantises one group of one row: it loads the group as a [G/per, per] tile, takes min/max, rounds
Δ and m to fp16, computes the codes, packs each row of the tile into a byte, and optionally
writes the fp32 residual x − x̂ (the official ``triton_quantize_and_pack_along_last_dim_witherror``).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from reprolab.kernels.gear.quant import check_layout


@triton.jit
def _round_half_even(y):
    r = tl.floor(y + 0.5)
    odd = (r.to(tl.int32) % 2) != 0
    return tl.where((r - y == 0.5) & odd, r - 1.0, r)


@triton.jit
def _quant_pack_kernel(X, CODES, SCALE, MN, RES, L, NG,
                       G: tl.constexpr, BITS: tl.constexpr, PER: tl.constexpr, BLOCK: tl.constexpr,
                       HAS_RES: tl.constexpr):
    row = tl.program_id(0)
    grp = tl.program_id(1)
    levels = (1 << BITS) - 1
    i = tl.arange(0, BLOCK)[:, None] * PER + tl.arange(0, PER)[None, :]  # [BLOCK, PER] offsets in the group
    inside = i < G
    base = row.to(tl.int64) * L + grp * G
    x = tl.load(X + base + i, mask=inside, other=0.0).to(tl.float32)
    mn = tl.min(tl.min(tl.where(inside, x, float("inf")), axis=1), axis=0)
    mx = tl.max(tl.max(tl.where(inside, x, float("-inf")), axis=1), axis=0)
    scale = tl.math.div_rn(mx - mn, levels * 1.0).to(tl.float16).to(tl.float32)
    mn = mn.to(tl.float16).to(tl.float32)
    safe = tl.where(scale > 0, scale, 1.0)
    q = _round_half_even(tl.maximum(tl.math.div_rn(x - mn, safe), 0.0))
    q = tl.minimum(q, levels * 1.0)
    shifts = tl.arange(0, PER) * BITS
    packed = tl.sum(q.to(tl.int32) << shifts[None, :], axis=1)  # [BLOCK]
    j = tl.arange(0, BLOCK)
    tl.store(CODES + row.to(tl.int64) * (L // PER) + grp * (G // PER) + j, packed.to(tl.uint8), mask=j < G // PER)
    tl.store(SCALE + row.to(tl.int64) * NG + grp, scale.to(tl.float16))
    tl.store(MN + row.to(tl.int64) * NG + grp, mn.to(tl.float16))
    if HAS_RES:
        tl.store(RES + base + i, x - (q * scale + mn), mask=inside)


def quantize_pack(x: torch.Tensor, bits: int, group: int, residual: bool = False):
    """Triton version of `reprolab.kernels.gear.quant.quantize_pack` (fp16 parameters).

    x: [..., L]; returns (codes uint8 [..., L·bits/8], scale fp16 [..., L/g], mn fp16 [..., L/g])
    and, with ``residual``, the fp32 residual [..., L] as a fourth element.
    """
    L = x.shape[-1]
    check_layout(L, bits, group)
    lead = x.shape[:-1]
    x2 = x.reshape(-1, L).contiguous()
    R, per, ng = x2.shape[0], 8 // bits, L // group
    codes = torch.empty(R, L // per, dtype=torch.uint8, device=x.device)
    scale = torch.empty(R, ng, dtype=torch.float16, device=x.device)
    mn = torch.empty(R, ng, dtype=torch.float16, device=x.device)
    res = torch.empty(R, L, dtype=torch.float32, device=x.device) if residual else codes
    block = triton.next_power_of_2(max(1, group // per))
    _quant_pack_kernel[(R, ng)](x2, codes, scale, mn, res, L, ng, G=group, BITS=bits, PER=per, BLOCK=block, HAS_RES=residual)
    out = (codes.view(*lead, -1), scale.view(*lead, ng), mn.view(*lead, ng))
    return out + (res.view(*lead, L),) if residual else out
