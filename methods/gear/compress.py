"""GEAR's compression of one chunk of KV: quantised backbone + sparse outliers + low-rank residual.

"GEAR: An Efficient KV Cache Compression Recipe for Near-Lossless Generative Inference of LLM",
Kang, Zhang, Kundu, Jeong, Liu, Krishna, Zhao, arXiv:2403.05527 (spec: ../shared/papers/gear.md §2).

For X ∈ {K, V} of one chunk, shape [B, H, n, d_H] (K after RoPE, before GQA's repeat):

    S  = Filter_s(X)                 sparse outliers: per row the k smallest and k largest entries
                                     (signed ``topk``), kept exactly (fp16 value + int32 index)
    D̂  = Dequant(Quant_b(X − S))     group-wise asymmetric b-bit quantisation (`reprolab.kernels.gear.quant`)
                                     of X with the outliers replaced by the row mean, so they do not
                                     stretch any group's range
    R  = X − fp16(D̂ + S)             residual (zero at outlier positions)
    L  = Q Pᵀ ≈ R                    rank-r power iteration per (batch, head) n × d_H matrix

and X̂ = D̂ + S + L. Order of operations as in the official ``gearslkivi_channelQ_new`` /
``gearslkivi_tokenQ_new`` (§2.1): fp32 math, mean computed over the full row before the
replacement, outliers written back after dequantisation, D̂+S rounded to fp16 before the residual.

Deviations from the official code (each a choice, documented in the spec):
- ``quant_levels`` is 2^b − 1 everywhere (the official sparse path passes b² − 1: equal for b = 2, 4).
- The per-row outlier count is ⌈s·row_len/2⌉ per side in ``"paper"`` mode (the default);
  ``"official"`` mode reproduces ⌊⌊B·H·n·d_H·s⌋/B/n/2⌋, which for keys makes the kept fraction
  H·d_H·s/n (all keys become outliers for short chunks, §2.3). Both are capped at ⌊row_len/2⌋.
- The backbone D̂+S is always rounded to fp16 before the residual is fitted (the official GEAR-L
  path skips this for fp32 input), so s = 0 gives GEAR-L and s = r = 0 gives KIVI exactly.
- The power iteration starts from one random P shared by every (batch, head) matrix (drawn from
  the cache's own generator), so compressing a batch equals compressing each sequence alone; the
  official code draws a fresh P per matrix from the global RNG (pass ``p0`` to reproduce it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from reprolab.kernels.gear import quant
from methods.gear.config import COUNT_MODES
from methods.gear.layout import from_rows, row_length, to_rows
from methods.linalg import orthonormal_basis

FILLS = ("mean", "inside")


@dataclass(frozen=True)
class QuantSpec:
    """How one of K/V is quantised: ``bits``, row ``layout`` and ``group`` (None: the whole row)."""

    bits: int
    layout: str
    group: Optional[int] = None

    def group_for(self, row_len: int) -> int:
        return row_len if self.group is None else self.group


@dataclass(frozen=True)
class CodecSpec:
    """Everything but the rank: the rank differs between the prefill chunk and decode chunks.

    outlier_fill: ``mean`` (GEAR: outliers replaced by the row mean before the ranges are taken)
      or ``inside`` (v1 outlier-reduced quantisation: the range is that of the remaining entries).
    storage: ``packed`` (real low-bit codes, fp16 scales/mins/outliers/factors) or ``simulated``
      (fake-quantise in fp32 and keep the fp16 reconstruction, as the official accuracy runs).
    """

    key: QuantSpec
    value: QuantSpec
    outlier_frac: float = 0.0
    outlier_count: str = "paper"
    outlier_fill: str = "mean"
    loops: int = 3
    storage: str = "packed"

    def quant(self, kind: str) -> QuantSpec:
        return self.key if kind == "key" else self.value


# ---- outliers --------------------------------------------------------------------------------
def outlier_k(frac: float, mode: str, shape, layout: str) -> int:
    """Outliers per row per side (k smallest + k largest), capped at half the row."""
    if frac <= 0:
        return 0
    L = row_length(layout, shape)
    if mode == "paper":
        k = math.ceil(frac * L / 2)
    elif mode == "official":
        B, H, n, d = shape
        k = int(int(B * H * n * d * frac) / B / n / 2)
    else:
        raise ValueError(f"outlier_count={mode!r} is not one of {list(COUNT_MODES)}.")
    return min(k, L // 2)


def split_outliers(rows: torch.Tensor, k: int, fill: str = "mean", inplace: bool = False):
    """Take the k smallest and k largest entries of every row (signed values).

    Returns (filled rows, index [.., 2k] int64, value [.., 2k]); ``filled`` has the outliers
    replaced by the row mean (``fill="mean"``) or by the smallest remaining entry (``"inside"``);
    it is ``rows`` itself, overwritten, with ``inplace``.
    """
    small_v, small_i = rows.topk(k, dim=-1, largest=False)
    large_v, large_i = rows.topk(k, dim=-1, largest=True)
    if fill == "mean":
        f = rows.mean(-1, keepdim=True).expand_as(small_v)
    elif fill == "inside":
        f = rows.topk(min(k + 1, rows.shape[-1]), dim=-1, largest=False).values[..., -1:].expand_as(small_v)
    else:
        raise ValueError(f"outlier_fill={fill!r} is not one of {list(FILLS)}.")
    filled = (rows if inplace else rows.clone()).scatter_(-1, small_i, f).scatter_(-1, large_i, f)
    return filled, torch.cat([small_i, large_i], -1), torch.cat([small_v, large_v], -1)


# ---- low rank --------------------------------------------------------------------------------
def power_iteration(R: torch.Tensor, rank: int, loops: int, p0: torch.Tensor, orthogonalize_every: bool = False):
    """Rank-``rank`` factors (Q [.., n, r] orthonormal, P [.., d, r]) with Q Pᵀ ≈ R [.., n, d].

    PowerSGD-style, as the official ``fake_poweriteration_group``: ``loops`` rounds of
    Q ← R P, P ← Rᵀ Q, with QR of P and of Q only in the last round (every round with
    ``orthogonalize_every``, which converges to the top-r SVD subspace for large ``loops``). The QR
    is `methods.linalg.orthonormal_basis` (CholeskyQR2 on CUDA): Q Pᵀ does not depend on the basis.
    ``p0`` [.., d, r] (broadcast over the leading axes) is the random start.
    """
    n, d = R.shape[-2:]
    if rank > min(n, d):
        raise ValueError(f"rank={rank} exceeds min(n, d_H) = min({n}, {d}): lower the rank or compress longer chunks.")
    if loops < 1:
        raise ValueError(f"loops={loops} must be >= 1.")
    P = p0.to(R).expand(*R.shape[:-2], d, rank)
    Q = None
    for i in range(loops):
        last = i == loops - 1
        if last or orthogonalize_every:
            P = orthonormal_basis(P)
        Q = R @ P
        if last or orthogonalize_every:
            Q = orthonormal_basis(Q)
        P = R.transpose(-1, -2) @ Q
    return Q, P


# ---- one chunk -------------------------------------------------------------------------------
@dataclass
class Compressed:
    """One of K/V of one chunk, as stored.

    Packed: ``codes`` uint8 [B, rows, row_len·b/8], ``scale``/``mn`` fp16 [B, rows, row_len/g],
    ``out_idx`` int32 / ``out_val`` fp16 [B, rows, 2k] (positions within the row), low-rank
    ``lr_q`` [B, H, n, r] and ``lr_p`` [B, H, d_H, r] fp16. Simulated: ``dense`` fp16 [B, H, n, d_H]
    (the reconstruction) and the same ``nominal_bits`` a packed chunk would take.
    """

    shape: tuple
    spec: QuantSpec
    group: int
    codes: Optional[torch.Tensor] = None
    scale: Optional[torch.Tensor] = None
    mn: Optional[torch.Tensor] = None
    out_idx: Optional[torch.Tensor] = None
    out_val: Optional[torch.Tensor] = None
    lr_q: Optional[torch.Tensor] = None
    lr_p: Optional[torch.Tensor] = None
    dense: Optional[torch.Tensor] = None
    nominal_bits: int = 0

    @property
    def n(self) -> int:
        return self.shape[2]

    def backbone(self) -> torch.Tensor:
        """fp16 D̂ + S of a packed chunk (exactly the tensor the residual was fitted against)."""
        rows = quant.unpack_dequantize(self.codes, self.scale, self.mn, self.spec.bits)
        if self.out_idx is not None:
            rows = rows.scatter(-1, self.out_idx.long(), self.out_val.float())
        return from_rows(rows, self.spec.layout, self.shape).half()

    def lowrank(self) -> Optional[torch.Tensor]:
        if self.lr_q is None:
            return None
        return self.lr_q.float() @ self.lr_p.float().transpose(-1, -2)

    def materialize(self) -> torch.Tensor:
        """fp16 [B, H, n, d_H] reconstruction D̂ + S + L."""
        if self.dense is not None:
            return self.dense
        base = self.backbone()
        lr = self.lowrank()
        return base if lr is None else (base.float() + lr).half()


def nominal_bits(shape, spec: QuantSpec, group: int, n_outliers: int, rank: int) -> int:
    """Memory formula of §2.7 for one chunk of one of K/V (whole batch)."""
    B, H, n, d = shape
    numel = B * H * n * d
    return spec.bits * numel + 2 * 16 * (numel // group) + 48 * n_outliers + 16 * rank * (n + d) * H * B


CPU_BLOCK = 1 << 18  # entries per block on the CPU (1 MiB of fp32): each step's temporaries stay in cache


def _spans(count: int, per: int) -> list[slice]:
    return [slice(i, min(i + per, count)) for i in range(0, count, per)]


def row_blocks(shape, layout: str, device: torch.device) -> list[tuple[slice, slice, tuple]]:
    """The blocks of rows `compress` quantises one at a time: (batch slice, rows slice, index into
    x [B, H, n, d_H]) triples.

    Rows are independent (outliers, groups and ranges never cross one), so any split gives the same
    codes. On the CPU a chunk is taken in blocks of about ``CPU_BLOCK`` entries: sequences, then whole
    heads (channel layout: a head's d_H channels over every token) or whole tokens (token layout:
    every head of a token), so that no step allocates and faults in a chunk-sized temporary (on the
    2-core VM a fresh 64 MiB tensor costs 5-8x the pass that fills it). On a GPU, and for the
    tensor/dim layouts, the whole chunk is one block (one set of launches).
    """
    B, H, n, d = shape
    if device.type != "cpu" or layout not in ("channel", "token"):
        return [(slice(None), slice(None), (slice(None),) * 4)]
    unit, count = (d * n, H) if layout == "channel" else (H * d, n)  # entries per head / per token
    seqs = max(1, CPU_BLOCK // (unit * count))
    per = max(1, CPU_BLOCK // unit)
    blocks = []
    for b in _spans(B, seqs):
        for c in _spans(count, per):
            if layout == "channel":
                blocks.append((b, slice(c.start * d, c.stop * d), (b, c)))
            else:
                blocks.append((b, c, (b, slice(None), c)))
    return blocks


def head_blocks(shape, device: torch.device) -> list[tuple]:
    """(batch slice, head slice) blocks of about ``CPU_BLOCK`` entries on the CPU (whole n x d_H
    matrices), one block elsewhere: the low-rank fit runs one block at a time, each matrix on its own
    as in one batch (the same products: tests/gear/test_compress.py)."""
    B, H, n, d = shape
    if device.type != "cpu":
        return [(slice(None), slice(None))]
    heads = max(1, CPU_BLOCK // (n * d))
    return [(b, h) for b in _spans(B, max(1, heads // H)) for h in _spans(H, heads)]


def compress(x: torch.Tensor, kind: str, codec: CodecSpec, rank: int, p0: Optional[torch.Tensor]) -> Compressed:
    """Compress ``x`` [B, H, n, d_H] (``kind`` = "key" or "value") with ``codec`` and ``rank``.

    ``p0`` [d_H, rank] or [B, H, d_H, rank]: the power-iteration start (ignored when rank = 0).
    Two passes, each in cache-sized blocks on the CPU: the backbone block by block of rows
    (`row_blocks`), written into the stored tensors and fp16 D̂ + S; then the residual and its
    low-rank fit block by block of (sequence, head) matrices (`head_blocks`).
    """
    spec = codec.quant(kind)
    shape = tuple(x.shape)
    B, H, n, d = shape
    L = row_length(spec.layout, shape)
    group = spec.group_for(L)
    packed = codec.storage == "packed"
    if packed:
        quant.check_layout(L, spec.bits, group)
    elif L % group:
        raise ValueError(f"{kind}s: a row of {L} entries cannot be split into groups of {group} (use a chunk length that is a multiple of g).")
    if rank > min(n, d):
        raise ValueError(f"rank={rank} exceeds min(n, d_H) = min({n}, {d}): lower the rank or compress longer chunks.")
    k = outlier_k(codec.outlier_frac, codec.outlier_count, shape, spec.layout)
    n_rows = H * n * d // L
    params_dtype = torch.float16 if packed else torch.float32
    empty = lambda *size, dtype: torch.empty(*size, dtype=dtype, device=x.device)  # noqa: E731
    base = empty(shape, dtype=torch.float16)  # fp16(D̂ + S); simulated: then fp16(D̂ + S + L)
    scale, mn = empty(B, n_rows, L // group, dtype=params_dtype), empty(B, n_rows, L // group, dtype=params_dtype)
    codes = empty(B, n_rows, L * spec.bits // 8, dtype=torch.uint8) if packed else None
    idx = empty(B, n_rows, 2 * k, dtype=torch.int32 if packed else torch.int64) if k else None
    val = empty(B, n_rows, 2 * k, dtype=torch.float16 if packed else torch.float32) if k else None
    for bs, rs, at in row_blocks(shape, spec.layout, x.device):
        xb = x[at]
        rows = to_rows(xb, spec.layout, torch.float32)
        if k:
            rows, i, v = split_outliers(rows, k, codec.outlier_fill, inplace=True)
            idx[bs, rs], val[bs, rs] = i, v
        mn_b, scale_b = quant.quant_params(rows, spec.bits, group, params_dtype)
        mn[bs, rs], scale[bs, rs] = mn_b, scale_b
        q = quant.quantize(rows, mn_b, scale_b, spec.bits)
        if packed:
            codes[bs, rs] = quant.pack(q, spec.bits)
        deq = quant.dequantize(q, mn_b, scale_b)
        if k:
            deq.scatter_(-1, i, v)
        from_rows(deq, spec.layout, xb.shape, out=base[at])
    lr_q = lr_p = None
    if rank > 0:
        factor = torch.float16 if packed else torch.float32
        # Q column-major per matrix, as the QR returns it (and as a rounded copy of it would keep it)
        lr_q, lr_p = empty(B, H, rank, n, dtype=factor).mT, empty(B, H, d, rank, dtype=factor)
        for bs, hs in head_blocks(shape, x.device):
            R = torch.empty(x[bs, hs].shape, device=x.device).copy_(x[bs, hs]).sub_(base[bs, hs])  # X − fp16(D̂ + S)
            Q, P = power_iteration(R, rank, codec.loops, p0 if p0.dim() == 2 else p0[bs, hs])
            lr_q[bs, hs], lr_p[bs, hs] = Q, P
            if not packed:
                base[bs, hs] = base[bs, hs].float() + Q @ P.transpose(-1, -2)
    n_out = 0 if idx is None else idx.numel()
    bits = nominal_bits(shape, spec, group, n_out, rank)
    if not packed:
        return Compressed(shape, spec, group, dense=base, nominal_bits=bits)
    return Compressed(shape, spec, group, codes=codes, scale=scale, mn=mn, out_idx=idx, out_val=val,
                      lr_q=lr_q, lr_p=lr_p, nominal_bits=bits)
