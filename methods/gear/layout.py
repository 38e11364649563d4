"""How a KV tensor [B, H, n, d_H] is laid out as rows for group quantisation and outlier filtering.

Each layout views one sequence's tensor as rows; groups run along the last axis of a row.

=========  ====================  ==========  ===================================================
layout     rows                  row length  used by
=========  ====================  ==========  ===================================================
channel    H·d_H channels        n tokens    keys of KIVI / KCVT / GEAR (per-channel groups)
token      n tokens              H·d_H       values of KIVI / KCVT / GEAR, keys+values of the
                                             per-token group baseline (heads concatenated,
                                             head-major, as in the official code)
tensor     1 (whole sequence)    H·n·d_H     v1 uniform / outlier-reduced quantisation
dim        d_H head-dim indices  H·n         v1 "group" quantisation (one range per index c)
=========  ====================  ==========  ===================================================

All layouts keep the batch axis first and never mix sequences (the official v1 code pools
statistics over the whole batch; we pool per sequence so a result never depends on batch mates).
"""
from __future__ import annotations

import torch

LAYOUTS = ("channel", "token", "tensor", "dim")


def to_rows(x: torch.Tensor, layout: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    """[B, H, n, d] -> [B, rows, row_len]: a new tensor, in ``dtype`` if given (one pass: the permuted
    copy converts as it goes)."""
    B, H, n, d = x.shape
    views = {"channel": lambda: (x.permute(0, 1, 3, 2), (B, H * d, n)), "token": lambda: (x.permute(0, 2, 1, 3), (B, n, H * d)),
             "tensor": lambda: (x, (B, 1, H * n * d)), "dim": lambda: (x.permute(0, 3, 1, 2), (B, d, H * n))}
    if layout not in views:
        raise ValueError(f"layout={layout!r} is not one of {list(LAYOUTS)}.")
    view, shape = views[layout]()
    out = torch.empty(view.shape, dtype=dtype or x.dtype, device=x.device).copy_(view)
    return out.view(shape)


def from_rows(rows: torch.Tensor, layout: str, shape, out: torch.Tensor | None = None) -> torch.Tensor:
    """Inverse of `to_rows`: [B, rows, row_len] -> [B, H, n, d] (contiguous), or written into ``out``
    (any strides and dtype: one converting pass)."""
    B, H, n, d = shape
    if layout == "channel":
        x = rows.reshape(B, H, d, n).permute(0, 1, 3, 2)
    elif layout == "token":
        x = rows.reshape(B, n, H, d).permute(0, 2, 1, 3)
    elif layout == "tensor":
        x = rows.reshape(B, H, n, d)
    elif layout == "dim":
        x = rows.reshape(B, d, H, n).permute(0, 2, 3, 1)
    else:
        raise ValueError(f"layout={layout!r} is not one of {list(LAYOUTS)}.")
    return x.contiguous() if out is None else out.copy_(x)


def row_length(layout: str, shape) -> int:
    B, H, n, d = shape
    return {"channel": n, "token": H * d, "tensor": H * n * d, "dim": H * n}[layout]
