"""Triton kernel: TempNet's eval-mode ``logits / tau(logits)`` for CUDA, one program per row (decode: one per sequence).

Semantics are those of the PyTorch twin, `methods.tempnet.module.tau_folded` (folded weights from
`TempNet.folded`) followed by the division: with x the row (``shift_max``: minus its max),

    h = sigmoid((x W1^T) / max(|x|, 1e-12) + b1);  s = W2' h + b2';  y = W_y h + b_y
    z = sum_k softmax(s)_k y_k;                   tau = tau_min + span sigmoid(z);  out = logits / tau

The first layer streams the row in BLOCK_V chunks against a [BLOCK_M, BLOCK_V] tile of W1 (accumulating |x|^2 on the
way); the second layer runs in BLOCK_K chunks of its outputs with an online softmax (running max, sum and weighted
sum of y), so no M x M tile is held; a last pass writes the divided row. Checked against the twin under
TRITON_INTERPRET=1 (tests/tempnet/test_temper_kernel.py); not timed here (no GPU on the CPU VM).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _temper_kernel(X, OUT, W1, B1, W2, B2, WY, BY, V, M, tau_min, span,
                   BLOCK_V: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr, SHIFT: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    xrow = X + row * V
    m_idx = tl.arange(0, BLOCK_M)
    m_in = m_idx < M
    shift = 0.0
    if SHIFT:
        mx = tl.full([BLOCK_V], float("-inf"), tl.float32)
        for v0 in range(0, V, BLOCK_V):
            v_idx = v0 + tl.arange(0, BLOCK_V)
            mx = tl.maximum(mx, tl.load(xrow + v_idx, mask=v_idx < V, other=float("-inf")).to(tl.float32))
        shift = tl.max(mx, axis=0)
    acc = tl.zeros([BLOCK_M], tl.float32)
    sq = tl.zeros([BLOCK_V], tl.float32)
    for v0 in range(0, V, BLOCK_V):
        v_idx = v0 + tl.arange(0, BLOCK_V)
        v_in = v_idx < V
        x = tl.where(v_in, tl.load(xrow + v_idx, mask=v_in, other=0.0).to(tl.float32) - shift, 0.0)
        sq += x * x
        w = tl.load(W1 + m_idx[:, None] * V + v_idx[None, :], mask=m_in[:, None] & v_in[None, :], other=0.0)
        acc += tl.sum(w.to(tl.float32) * x[None, :], axis=1)
    norm = tl.maximum(tl.sqrt(tl.sum(sq, axis=0)), 1e-12)
    b1 = tl.load(B1 + m_idx, mask=m_in, other=0.0).to(tl.float32)
    h = tl.where(m_in, tl.sigmoid(acc / norm + b1), 0.0)
    run_max = float("-inf")
    run_sum = 0.0
    run_dot = 0.0
    for k0 in range(0, M, BLOCK_K):
        k_idx = k0 + tl.arange(0, BLOCK_K)
        k_in = k_idx < M
        tile = k_in[:, None] & m_in[None, :]
        s = tl.sum(tl.load(W2 + k_idx[:, None] * M + m_idx[None, :], mask=tile, other=0.0).to(tl.float32) * h[None, :],
                   axis=1) + tl.load(B2 + k_idx, mask=k_in, other=0.0).to(tl.float32)
        y = tl.sum(tl.load(WY + k_idx[:, None] * M + m_idx[None, :], mask=tile, other=0.0).to(tl.float32) * h[None, :],
                   axis=1) + tl.load(BY + k_idx, mask=k_in, other=0.0).to(tl.float32)
        s = tl.where(k_in, s, float("-inf"))
        new_max = tl.maximum(run_max, tl.max(s, axis=0))
        scale = tl.exp(run_max - new_max)
        e = tl.where(k_in, tl.exp(s - new_max), 0.0)
        run_sum = run_sum * scale + tl.sum(e, axis=0)
        run_dot = run_dot * scale + tl.sum(e * tl.where(k_in, y, 0.0), axis=0)
        run_max = new_max
    tau = tau_min + span * tl.sigmoid(run_dot / run_sum)
    orow = OUT + row * V
    for v0 in range(0, V, BLOCK_V):
        v_idx = v0 + tl.arange(0, BLOCK_V)
        v_in = v_idx < V
        x = tl.load(xrow + v_idx, mask=v_in, other=0.0)
        tl.store(orow + v_idx, (x.to(tl.float32) / tau).to(x.dtype), mask=v_in)


def temper(logits: torch.Tensor, folded: tuple, span: float, shift_max: bool, block_v: int = 64,
           block_k: int = 16) -> torch.Tensor:
    """``logits / tau(logits)`` ``(..., V)`` from `TempNet.folded` weights (``span`` = tau_max - tau_min); the
    division in the logits' dtype (fp32 arithmetic)."""
    w1, b1, w2, b2, wy, by, lo = folded
    V, M = logits.shape[-1], w1.shape[0]
    x = logits.reshape(-1, V).contiguous()
    out = torch.empty_like(x)
    block_m = triton.next_power_of_2(M)
    _temper_kernel[(x.shape[0],)](x, out, w1.contiguous(), b1.contiguous(), w2.contiguous(), b2.contiguous(),
                                  wy.contiguous(), by.contiguous(), V, M, float(lo), float(span),
                                  BLOCK_V=block_v, BLOCK_M=block_m, BLOCK_K=min(block_k, block_m), SHIFT=shift_max)
    return out.view(logits.shape)
