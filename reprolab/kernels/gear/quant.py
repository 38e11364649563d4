"""Group-wise asymmetric quantisation with bit packing: the PyTorch twin of the Triton kernel.

GEAR (Kang et al., arXiv:2403.05527, §2.2 of ../shared/papers/gear.md) and KIVI (arXiv:2402.02750)
quantise a tensor laid out as rows, in contiguous groups of ``group`` entries along the last axis:

    m = min G,  Δ = (max G − m) / (2^b − 1),  q = clamp(round(relu((x − m) / Δ)), 0, 2^b − 1),
    x̂ = q·Δ + m.

The arithmetic is the official code's (``fake_groupwise_*_asymmetric_quantization``): divide by Δ,
``relu``, round half to even, multiply back. Two storage precisions of (Δ, m):

- ``params_dtype=torch.float32``: the reference ("simulated", fake-quantise) arithmetic, bit-exact
  with the official functions.
- ``params_dtype=torch.float16``: what a real cache stores. Δ and m are rounded to fp16 *before*
  the codes are chosen, so the codes are the best ones for the stored parameters (the clamp keeps
  the max group entry at 2^b − 1 when fp16 rounding shrinks Δ).

A constant group (Δ = 0) would give 0/0 = NaN in the official code; here its codes are 0 and it
reconstructs to m.

Packing: ``8 // bits`` codes per uint8, the first code in the lowest bits. Shapes: ``x`` [..., L];
codes [..., L·bits/8] (uint8); scale, mn [..., L/group].
"""
from __future__ import annotations

import sys

import torch

BITS = (2, 4, 8)


def levels(bits: int) -> int:
    return (1 << bits) - 1


def check_layout(length: int, bits: int, group: int) -> None:
    """Raise a ValueError naming the problem if rows of ``length`` cannot be quantised as asked."""
    if bits not in BITS:
        raise ValueError(f"bits={bits} is not supported: packed storage needs bits in {list(BITS)}.")
    if group <= 0 or length % group:
        raise ValueError(
            f"a row of {length} entries cannot be split into groups of {group}: the length must be a multiple "
            f"of the group size (for per-channel keys: make the chunk length, i.e. the streaming buffer, a multiple of g)."
        )
    per = 8 // bits
    if length % per:
        raise ValueError(f"a row of {length} entries cannot be packed at {bits} bits: it must be a multiple of {per}.")


def quant_params(x: torch.Tensor, bits: int, group: int, params_dtype=torch.float16):
    """(mn, scale) of each group of ``x`` [..., L] (fp32 math), returned in ``params_dtype``."""
    g = x.float().unflatten(-1, (-1, group))
    mn = g.amin(-1)
    scale = (g.amax(-1) - mn) / levels(bits)
    return mn.to(params_dtype), scale.to(params_dtype)


def quantize(x: torch.Tensor, mn: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """Integer codes (as fp32, unpacked) of ``x`` [..., L] for the given per-group parameters."""
    group = x.shape[-1] // mn.shape[-1]
    g = x.float().unflatten(-1, (-1, group))
    mn, scale = mn.float().unsqueeze(-1), scale.float().unsqueeze(-1)
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.sub(g, mn).div_(safe).relu_().round_().clamp_(max=levels(bits))  # relu((g − m)/Δ), one temporary
    return q.flatten(-2)


def dequantize(q: torch.Tensor, mn: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """fp32 reconstruction q·Δ + m of unpacked codes ``q`` [..., L]."""
    group = q.shape[-1] // mn.shape[-1]
    x = torch.mul(q.unflatten(-1, (-1, group)), scale.float().unsqueeze(-1)).add_(mn.float().unsqueeze(-1))
    return x.flatten(-2)


def pack(q: torch.Tensor, bits: int) -> torch.Tensor:
    """Pack codes [..., L] (integers in [0, 2^bits)) into uint8 [..., L·bits/8], first code in the low bits.

    The ``8 // bits`` codes of a byte, one per uint8, are read as one little-endian int32 (2 bits) or
    int16 (4 bits) v = Σ_j c_j 2^(8j); the byte is then OR_j (v >> j (8 − bits)) & 0xFF, which moves
    code j to bits [j·bits, (j+1)·bits) (every other term it shifts in lies above bit 8 or is zero):
    a few passes over L/4 integers instead of a reduction over a length-4 axis (2.4x faster on the CPU)."""
    q = q.to(torch.uint8)
    per = 8 // bits
    if per == 1:
        return q.contiguous()
    if sys.byteorder != "little" or q.shape[-1] % per:
        shifts = torch.arange(0, 8, bits, device=q.device, dtype=torch.uint8)
        return (q.unflatten(-1, (-1, per)) << shifts).sum(-1, dtype=torch.uint8)
    v = q.contiguous().view(torch.int32 if per == 4 else torch.int16)
    out = v.clone()
    for j in range(1, per):
        out |= v >> (j * (8 - bits))
    return (out & 0xFF).to(torch.uint8)


def unpack(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """Inverse of `pack`: uint8 [..., L·bits/8] -> uint8 codes [..., L]."""
    per = 8 // bits
    if per == 1:
        return codes
    shifts = torch.arange(0, 8, bits, device=codes.device, dtype=torch.uint8)
    return ((codes.unsqueeze(-1) >> shifts) & levels(bits)).flatten(-2)


def quantize_pack(x: torch.Tensor, bits: int, group: int, params_dtype=torch.float16):
    """Quantise rows of ``x`` [..., L] in groups of ``group``; return (codes, scale, mn).

    codes: packed uint8 [..., L·bits/8]; scale, mn: [..., L/group] in ``params_dtype``.
    """
    check_layout(x.shape[-1], bits, group)
    mn, scale = quant_params(x, bits, group, params_dtype)
    return pack(quantize(x, mn, scale, bits), bits), scale, mn


def unpack_dequantize(codes: torch.Tensor, scale: torch.Tensor, mn: torch.Tensor, bits: int) -> torch.Tensor:
    """fp32 reconstruction of packed ``codes`` [..., L·bits/8] with per-group ``scale``/``mn``."""
    return dequantize(unpack(codes, bits), mn, scale)


def fake_quantize(x: torch.Tensor, bits: int, group: int, params_dtype=torch.float32) -> torch.Tensor:
    """Quantise-dequantise (fp32 result): the "simulated" path, any ``bits`` >= 1 (no packing)."""
    if group <= 0 or x.shape[-1] % group:
        raise ValueError(f"a row of {x.shape[-1]} entries cannot be split into groups of {group}.")
    mn, scale = quant_params(x, bits, group, params_dtype)
    return dequantize(quantize(x, mn, scale, bits), mn, scale)
