"""An independent transcription of the official GEAR reference math, for parity tests only.

Written from the spec (../shared/papers/gear.md §2.1-2.4, §6 item 10) and the official functions'
operation order (``GEARLM/Simulated/compress_function.py``): ``fake_groupwise_token_asymmetric_quantization``,
``fake_groupwise_channel_asymmetric_quantization_new``, ``gears_channelQ`` / ``gears_tokenQ``,
``fake_poweriteration_group``, ``gearslkivi_channelQ_new`` / ``gearslkivi_tokenQ_new``. It works on the
official [B, n, H·d] layout (not our row layouts) so that a layout mistake on our side shows up.
"""
from __future__ import annotations

import torch


def _tokens(x):  # [B, H, n, d] -> [B, n, H*d]
    B, H, n, d = x.shape
    return x.permute(0, 2, 1, 3).reshape(B, n, H * d)


def _untokens(t, shape):
    B, H, n, d = shape
    return t.reshape(B, n, H, d).permute(0, 2, 1, 3)


def token_quant(x, bits, group, levels=None):
    """Per-token groups of ``group`` channels of the H·d vector; result in x's dtype."""
    levels = 2**bits - 1 if levels is None else levels
    t = _tokens(x).float()
    B, n, C = t.shape
    t = t.view(B, n, C // group, group)
    mx, mn = t.max(-1, keepdim=True)[0], t.min(-1, keepdim=True)[0]
    scale = (mx - mn) / levels
    q = torch.relu((t - mn) / scale).round_()
    return _untokens((q * scale + mn).view(B, n, C), x.shape).type(x.dtype)


def channel_quant(x, bits, group, levels=None):
    """Per-channel groups of ``group`` tokens; result in x's dtype."""
    levels = 2**bits - 1 if levels is None else levels
    t = _tokens(x).float()
    B, n, C = t.shape
    t = t.view(B, n // group, group, C)
    mx, mn = t.max(-2, keepdim=True)[0], t.min(-2, keepdim=True)[0]
    scale = (mx - mn) / levels
    q = torch.relu((t - mn) / scale).round_()
    return _untokens((q * scale + mn).view(B, n, C), x.shape).type(x.dtype)


def power_iteration(R, loops, rank):
    """Draws P = rand(B,H,d,r) then Q = rand(B,H,n,r) from the global RNG, QR in the last round only."""
    B, H, n, d = R.shape
    R = R.float()
    p = torch.rand(B, H, d, rank)
    q = torch.rand(B, H, n, rank)
    for i in range(loops):
        if i == loops - 1:
            p = torch.linalg.qr(p).Q
        q = R @ p
        if i == loops - 1:
            q = torch.linalg.qr(q).Q
        p = R.transpose(2, 3) @ q
    return q @ p.transpose(2, 3)


def quant_sparse(x, bits, group, sparsity, kind):
    """gears_channelQ (kind="key") / gears_tokenQ (kind="value"): outliers by signed topk, mean fill,
    quantise, restore, fp16."""
    out = x.float()
    B, H, n, d = out.shape
    k = int(int(B * H * n * d * sparsity) / B / n / 2)
    rows = out.permute(0, 1, 3, 2).reshape(B, H * d, n) if kind == "key" else _tokens(out).clone()
    small_v, small_i = torch.topk(rows, k, dim=-1, largest=False)
    large_v, large_i = torch.topk(rows, k, dim=-1, largest=True)
    avg = rows.mean(-1, keepdim=True).expand_as(rows)
    rows = rows.scatter(-1, small_i, avg.gather(-1, small_i)).scatter(-1, large_i, avg.gather(-1, large_i))
    if kind == "key":
        filled = rows.view(B, H, d, n).permute(0, 1, 3, 2)
        deq = channel_quant(filled, bits, group, levels=bits**2 - 1)
        back = deq.permute(0, 1, 3, 2).reshape(B, H * d, n)
    else:
        filled = _untokens(rows, x.shape)
        deq = token_quant(filled, bits, group, levels=bits**2 - 1)
        back = _tokens(deq).clone()
    back = back.scatter(-1, small_i, small_v).scatter(-1, large_i, large_v)
    if kind == "key":
        return back.view(B, H, d, n).permute(0, 1, 3, 2).half()
    return _untokens(back, x.shape).half()


def gear(x, bits, group, sparsity, rank, loops, kind):
    """gearslkivi_channelQ_new / gearslkivi_tokenQ_new: fp32 D̂+S (rounded to fp16) + low-rank residual."""
    x = x.float()
    out = quant_sparse(x.clone(), bits, group, sparsity, kind)
    return out + power_iteration(x - out, loops, rank)
