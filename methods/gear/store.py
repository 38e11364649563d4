"""The compressed part of one layer's K or V: chunks appended over time, stored concatenated.

`PackedStore` keeps the real packed state (codes, fp16 scales/mins, COO outliers, the low-rank
factors of every chunk); `DenseStore` keeps the fp16 reconstruction of simulated chunks.
Both expose ``append(chunk)``, ``materialize()`` (fp16 [B, H, N, d_H]), ``nbytes()`` (measured
from the stored tensors), ``nominal_bits`` (the §2.7 formula) and ``map_batch(fn)``.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from reprolab.kernels.gear import quant
from methods.gear.compress import Compressed, QuantSpec
from methods.gear.layout import from_rows


def _cat(a: Optional[torch.Tensor], b: torch.Tensor, dim: int) -> torch.Tensor:
    return b if a is None else torch.cat([a, b], dim)


class PackedStore:
    """Packed chunks of a ``channel`` (keys) or ``token`` (values) layout, concatenated along tokens.

    channel: codes [B, H·d, N·b/8], scale/mn [B, H·d, #groups], outliers [B, H·d, Σ2k] with token
      positions; a chunk's groups never cross its boundary (``group_lens`` records their sizes).
    token: codes [B, N, H·d·b/8], scale/mn [B, N, H·d/g], outliers [B, N, 2k] with channel positions.
    lowrank: [(first token, Q [B, H, C, n, r], P [B, H, C, d_H, r])]: the factors of C consecutive
      chunks of n tokens each and the same rank r, stacked (the prompt chunk, then every decode
      chunk in one group), so that decode attention takes one batched product per group, not one
      per chunk.
    """

    def __init__(self, spec: QuantSpec, heads: int, head_dim: int):
        if spec.layout not in ("channel", "token"):
            raise ValueError(f"packed storage serves the channel/token layouts, not {spec.layout!r}: use storage=simulated.")
        self.spec, self.heads, self.head_dim = spec, heads, head_dim
        self.axis = -1 if spec.layout == "channel" else 1
        self.codes = self.scale = self.mn = self.out_idx = self.out_val = None
        self.group_lens: list[int] = []  # channel layout: size of each group along tokens
        self._group_index: Optional[dict] = None  # key_group_index() by dtype, rebuilt once per appended chunk
        self.lowrank: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # see the class docstring
        self.n_tokens = 0
        self.nominal_bits = 0

    def append(self, chunk: Compressed) -> None:
        ax = self.axis
        self.codes = _cat(self.codes, chunk.codes, ax)
        self.scale = _cat(self.scale, chunk.scale, ax)
        self.mn = _cat(self.mn, chunk.mn, ax)
        if chunk.out_idx is not None:
            idx, val = chunk.out_idx, chunk.out_val
            if self.spec.layout == "channel":
                idx = idx + self.n_tokens
            elif self.out_idx is not None and idx.shape[-1] != self.out_idx.shape[-1]:
                idx, val = self._pad_outliers(idx, val)
            self.out_idx = _cat(self.out_idx, idx, ax)
            self.out_val = _cat(self.out_val, val, ax)
        if self.spec.layout == "channel":
            self.group_lens += [chunk.group] * (chunk.n // chunk.group)
        if chunk.lr_q is not None:
            self._append_lowrank(chunk.lr_q.unsqueeze(2), chunk.lr_p.unsqueeze(2))
        self.n_tokens += chunk.n
        self.nominal_bits += chunk.nominal_bits

    def _append_lowrank(self, q: torch.Tensor, p: torch.Tensor) -> None:
        """Stack a chunk's factors (q [B, H, 1, n, r], p [B, H, 1, d_H, r]) onto the last group when
        that group ends where the chunk starts and has the same n and r; else open a group."""
        if self.lowrank:
            start, Q, P = self.lowrank[-1]
            if Q.shape[3:] == q.shape[3:] and start + Q.shape[2] * Q.shape[3] == self.n_tokens:
                self.lowrank[-1] = (start, torch.cat([Q, q], 2), torch.cat([P, p], 2))
                return
        self.lowrank.append((self.n_tokens, q, p))

    def _pad_outliers(self, idx, val):
        """token layout, ``outlier_count=official``: k can differ by one between chunk lengths
        (integer truncation). Repeat each row's first outlier so the rows line up; a repeated
        (index, value) pair writes the same value twice, so the reconstruction is unchanged."""
        width = max(idx.shape[-1], self.out_idx.shape[-1])

        def widen(i, v):
            extra = width - i.shape[-1]
            if extra == 0:
                return i, v
            return torch.cat([i, i[..., :1].expand(*i.shape[:-1], extra)], -1), torch.cat([v, v[..., :1].expand(*v.shape[:-1], extra)], -1)

        self.out_idx, self.out_val = widen(self.out_idx, self.out_val)
        return widen(idx, val)

    @property
    def batch(self) -> int:
        return self.codes.shape[0]

    def key_group_index(self, dtype: torch.dtype = torch.int64) -> torch.Tensor:
        """channel layout: the scale/min column of every token ([N], int64 or the kernel's int32).

        Kept between calls (decode reads it every step) and rebuilt when a chunk has been appended:
        building it costs a host-to-device copy. Derived metadata, not counted in ``nbytes()``.
        """
        if self._group_index is None or self._group_index[torch.int64].numel() != self.n_tokens:
            device = self.codes.device
            lens = torch.tensor(self.group_lens, device=device)
            index = torch.repeat_interleave(torch.arange(len(self.group_lens), device=device), lens,
                                            output_size=self.n_tokens)
            self._group_index = {torch.int64: index}
        if dtype not in self._group_index:
            self._group_index[dtype] = self._group_index[torch.int64].to(dtype)
        return self._group_index[dtype]

    def group_length(self) -> Optional[int]:
        """The length of every quantisation group when they are all equal (token layout: always;
        channel layout: unless chunks of different group sizes were appended), else None."""
        if self.spec.layout == "token":
            return self.codes.shape[-1] * (8 // self.spec.bits) // self.scale.shape[-1]
        lens = set(self.group_lens)
        return lens.pop() if len(lens) == 1 else None

    def backbone_rows(self) -> torch.Tensor:
        """fp32 D̂ + S in the row layout."""
        q = quant.unpack(self.codes, self.spec.bits).float()
        if self.spec.layout == "channel":
            col = self.key_group_index()
            rows = q * self.scale.float()[..., col] + self.mn.float()[..., col]
        else:
            rows = quant.dequantize(q, self.mn, self.scale)
        if self.out_idx is not None:
            rows = rows.scatter(-1, self.out_idx.long(), self.out_val.float())
        return rows

    def materialize(self, dtype=torch.float16) -> torch.Tensor:
        """[B, H, N, d_H]: D̂ + S + each chunk's Q Pᵀ.

        ``float16``: the cache's reconstruction (D̂ + S rounded to fp16, then + L, rounded again).
        ``float32``: the same sum without the intermediate rounding (the fused kernel's exact target).
        """
        shape = (self.batch, self.heads, self.n_tokens, self.head_dim)
        x = from_rows(self.backbone_rows(), self.spec.layout, shape)
        if dtype == torch.float16:
            x = x.half()
        if not self.lowrank:
            return x
        x = x.float()
        for start, q, p in self.lowrank:
            x[:, :, start : start + q.shape[2] * q.shape[3]] += (q.float() @ p.float().transpose(-1, -2)).flatten(2, 3)
        return x.to(dtype)

    def tensors(self) -> list[torch.Tensor]:
        ts = [t for t in (self.codes, self.scale, self.mn, self.out_idx, self.out_val) if t is not None]
        return ts + [t for _, q, p in self.lowrank for t in (q, p)]

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors())

    def map_batch(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        for name in ("codes", "scale", "mn", "out_idx", "out_val"):
            if getattr(self, name) is not None:
                setattr(self, name, fn(getattr(self, name)))
        self.lowrank = [(s, fn(q), fn(p)) for s, q, p in self.lowrank]


class DenseStore:
    """Simulated chunks: the fp16 reconstruction [B, H, N, d_H], plus the bits a packed store would take."""

    def __init__(self):
        self.dense: Optional[torch.Tensor] = None
        self.nominal_bits = 0

    @property
    def n_tokens(self) -> int:
        return 0 if self.dense is None else self.dense.shape[2]

    def append(self, chunk: Compressed) -> None:
        self.dense = _cat(self.dense, chunk.materialize(), 2)
        self.nominal_bits += chunk.nominal_bits

    def materialize(self) -> torch.Tensor:
        return self.dense

    def nbytes(self) -> int:
        return 0 if self.dense is None else self.dense.numel() * self.dense.element_size()

    def map_batch(self, fn) -> None:
        if self.dense is not None:
            self.dense = fn(self.dense)
