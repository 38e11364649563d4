"""Triton kernels for the COSMOS step (cosmos.md §2.11). Twins: reprolab/kernels/cosmos/reference.py.

Two kernels cover the hot GEMMs of a step:

- `gemm_epilogue`: out = alpha (A @ B) + beta C + delta D with the axpy epilogue fused into the
  GEMM, and an optional symmetric mode that computes only the upper block triangle of a product
  known to be symmetric (X X^T, A A) and mirrors each tile (half the FLOPs of a Newton-Schulz
  Gram product; the grid holds only those blocks, their indices read from a small table). It serves Newton-Schulz (Gram product, A X, and the a X + b B + c A B step), the
  power-iteration product Z = (1 - beta2) G^T (G U) + beta2 U S, the residual
  R = Ghat - (Ghat U) U^T with Ghat formed in the epilogue from G and M, and the mix
  H = D U^T + gamma' O.
- `project_moments`: one pass over G and M per row block: the momentum update M <- beta1 M + G
  and the Nesterov mix are an elementwise prologue, the two projections G U and Ghat U share the
  tile loop over n, and the second-moment update and the Adam division are the epilogue.

Accumulation is fp32. fp32 operands use IEEE fp32 dot products (torch's default on CUDA, so the
twin and the kernel agree to rounding); bf16 operands use bf16 tensor cores. Under
TRITON_INTERPRET=1 (the CPU parity tests) bf16 tiles are upcast to fp32 before `tl.dot`, because
the interpreter's bf16 arithmetic is wrong; the products of bf16 values are exact in fp32, so
this computes what the GPU computes.
"""
from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


@triton.jit
def _gemm_epilogue_kernel(
    a_ptr, b_ptr, c_ptr, d_ptr, o_ptr, tiles_ptr, M, N, K,
    s_ab, s_am, s_ak, s_bb, s_bk, s_bn, s_cb, s_cm, s_cn, s_db, s_dm, s_dn, s_ob, s_om, s_on,
    alpha, beta, delta, beta_ptr, s_beta,
    HAS_C: tl.constexpr, HAS_D: tl.constexpr, BETA_FROM_PTR: tl.constexpr, SYMMETRIC: tl.constexpr,
    UPCAST: tl.constexpr, PRECISION: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr,
):
    if SYMMETRIC:  # one program per block on or above the diagonal: (row, col) from a table
        t = tl.program_id(0)
        pid_m = tl.load(tiles_ptr + 2 * t)
        pid_n = tl.load(tiles_ptr + 2 * t + 1)
    else:
        pid_m = tl.program_id(0)
        pid_n = tl.program_id(1)
    batch = tl.program_id(2).to(tl.int64)  # the matrix of a batch (0 for a single product)
    a_ptr += batch * s_ab
    b_ptr += batch * s_bb
    c_ptr += batch * s_cb
    d_ptr += batch * s_db
    o_ptr += batch * s_ob
    rm = pid_m * BM + tl.arange(0, BM)
    rn = pid_n * BN + tl.arange(0, BN)
    rk = tl.arange(0, BK)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    for k0 in range(0, K, BK):
        kk = k0 + rk
        a = tl.load(a_ptr + rm[:, None] * s_am + kk[None, :] * s_ak, mask=(rm[:, None] < M) & (kk[None, :] < K), other=0.0)
        b = tl.load(b_ptr + kk[:, None] * s_bk + rn[None, :] * s_bn, mask=(kk[:, None] < K) & (rn[None, :] < N), other=0.0)
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
    acc = acc * alpha
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    if HAS_C:
        if BETA_FROM_PTR:  # a coefficient computed on the device (one per matrix: s_beta 1): no host sync
            beta = tl.load(beta_ptr + batch * s_beta).to(tl.float32)
        acc += beta * tl.load(c_ptr + rm[:, None] * s_cm + rn[None, :] * s_cn, mask=mask, other=0.0).to(tl.float32)
    if HAS_D:
        acc += delta * tl.load(d_ptr + rm[:, None] * s_dm + rn[None, :] * s_dn, mask=mask, other=0.0).to(tl.float32)
    out = acc.to(o_ptr.dtype.element_ty)
    tl.store(o_ptr + rm[:, None] * s_om + rn[None, :] * s_on, out, mask=mask)
    if SYMMETRIC:  # the mirrored tile, out[rn, rm] = out[rm, rn], for off-diagonal blocks (masked, no branch)
        off_diagonal = (rm[:, None] // BM) < (rn[None, :] // BN)
        tl.store(o_ptr + rm[:, None] * s_on + rn[None, :] * s_om, out, mask=mask & off_diagonal)


@triton.jit
def _project_moments_kernel(
    g_ptr, m_ptr, u_ptr, v_ptr, pg_ptr, ph_ptr, d_ptr, M, N, R,
    s_gb, s_gm, s_gn, s_mb, s_mm, s_mn, s_ub, s_un, s_ur, s_vb, s_vm, s_vr, s_ob, s_om, s_or,
    beta1, beta2, g_coef, m_coef, mix_scale, inv_sqrt_bias2, eps,
    PRECISION: tl.constexpr, BM: tl.constexpr, BK: tl.constexpr, BR: tl.constexpr,
):
    # One program owns BM full rows of G and M, so the in-place momentum update is race-free.
    pid = tl.program_id(0)
    batch = tl.program_id(1).to(tl.int64)  # the matrix of a batch (0 for a single one)
    g_ptr += batch * s_gb
    m_ptr += batch * s_mb
    u_ptr += batch * s_ub
    v_ptr += batch * s_vb
    pg_ptr += batch * s_ob
    ph_ptr += batch * s_ob
    d_ptr += batch * s_ob
    rm = pid * BM + tl.arange(0, BM)
    rr = tl.arange(0, BR)
    rk = tl.arange(0, BK)
    acc_g = tl.zeros((BM, BR), dtype=tl.float32)
    acc_h = tl.zeros((BM, BR), dtype=tl.float32)
    for k0 in range(0, N, BK):
        kk = k0 + rk
        mask = (rm[:, None] < M) & (kk[None, :] < N)
        g = tl.load(g_ptr + rm[:, None] * s_gm + kk[None, :] * s_gn, mask=mask, other=0.0).to(tl.float32)
        mom = tl.load(m_ptr + rm[:, None] * s_mm + kk[None, :] * s_mn, mask=mask, other=0.0)
        mom = beta1 * mom + g
        tl.store(m_ptr + rm[:, None] * s_mm + kk[None, :] * s_mn, mom, mask=mask)
        ghat = mix_scale * (g_coef * g + m_coef * mom)
        u = tl.load(u_ptr + kk[:, None] * s_un + rr[None, :] * s_ur,
                    mask=(kk[:, None] < N) & (rr[None, :] < R), other=0.0)
        acc_g = tl.dot(g, u, acc_g, input_precision=PRECISION)
        acc_h = tl.dot(ghat, u, acc_h, input_precision=PRECISION)
    omask = (rm[:, None] < M) & (rr[None, :] < R)
    v = tl.load(v_ptr + rm[:, None] * s_vm + rr[None, :] * s_vr, mask=omask, other=0.0)
    v = beta2 * v + (1.0 - beta2) * acc_g * acc_g
    tl.store(v_ptr + rm[:, None] * s_vm + rr[None, :] * s_vr, v, mask=omask)
    d = acc_h / (tl.sqrt(v) * inv_sqrt_bias2 + eps)
    offs = rm[:, None] * s_om + rr[None, :] * s_or
    tl.store(pg_ptr + offs, acc_g, mask=omask)
    tl.store(ph_ptr + offs, acc_h, mask=omask)
    tl.store(d_ptr + offs, d, mask=omask)


def _precision(*tensors) -> str:
    return "ieee" if all(t.dtype == torch.float32 for t in tensors) else "tf32"


def _strides(t: torch.Tensor, batched: bool) -> tuple[int, int, int]:
    """(batch, row, column) strides; the batch stride is 0 for a single matrix."""
    return (t.stride(0) if batched else 0, t.stride(-2), t.stride(-1))


_TILES: dict = {}


def _upper_tiles(t: int, device) -> torch.Tensor:
    """(row, col) block indices on or above the diagonal of a t x t block grid, flattened, on ``device``."""
    key = (t, str(device))
    if key not in _TILES:
        pairs = [(i, j) for i in range(t) for j in range(i, t)]
        _TILES[key] = torch.tensor(pairs, dtype=torch.int32, device=device).flatten()
    return _TILES[key]


def _gemm_blocks(M: int, N: int, low_precision: bool) -> tuple[int, int, int, int]:
    """(BM, BN, BK, num_warps): large tiles for the big bf16 Newton-Schulz products."""
    if low_precision and min(M, N) >= 512:
        return 128, 128, 32, 8
    return 64, 64, 32, 4


def gemm_epilogue(a, b, *, alpha=1.0, c=None, beta=1.0, d=None, delta=1.0, out_dtype=None, out=None,
                  symmetric=False):
    """out = alpha (a @ b) + beta c + delta d; see the module docstring. a (M, K) and b (K, N), or
    batches (k, M, K) and (k, K, N) of them (one launch; c, d, out then (k, M, N)). ``beta`` may be a
    0-dim device tensor, or one entry per matrix of a batch. ``out``: write into this tensor (it may
    be ``c``: each program reads its tile of c before it writes the same tile). ``symmetric``: the
    product (and c, d) are symmetric, so only the upper block triangle is computed and mirrored."""
    if a.dim() != b.dim() or a.dim() not in (2, 3) or (a.dim() == 3 and a.size(0) != b.size(0)):
        raise ValueError(f"gemm_epilogue: a and b must be matrices or batches of the same number of matrices, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    (M, K), (K2, N) = a.shape[-2:], b.shape[-2:]
    lead = tuple(a.shape[:-2])
    if K != K2:
        raise ValueError(f"gemm_epilogue: inner dimensions differ: a is {tuple(a.shape)}, b is {tuple(b.shape)}")
    if symmetric and M != N:
        raise ValueError(f"gemm_epilogue: symmetric=True needs a square product, got {M}x{N}")
    for name, t in (("c", c), ("d", d)):
        if t is not None and tuple(t.shape) != (*lead, M, N):
            raise ValueError(f"gemm_epilogue: {name} has shape {tuple(t.shape)}, the product is {(*lead, M, N)}")
    if out is None:
        out = torch.empty(*lead, M, N, device=a.device, dtype=out_dtype or a.dtype)
    elif tuple(out.shape) != (*lead, M, N):
        raise ValueError(f"gemm_epilogue: out has shape {tuple(out.shape)}, the product is {(*lead, M, N)}")
    elif symmetric and (out is c or out is d):
        raise ValueError("gemm_epilogue: with symmetric=True, out must not be c or d (mirrored tiles land in other "
                         "programs' blocks); pass out=None")
    low = a.dtype in (torch.bfloat16, torch.float16)
    BM, BN, BK, warps = _gemm_blocks(M, N, low)
    c_ = c if c is not None else out
    d_ = d if d is not None else out
    batch = lead[0] if lead else 1
    beta_is_tensor = isinstance(beta, torch.Tensor)
    beta_ptr = beta.to(device=a.device, dtype=torch.float32).reshape(-1).contiguous() if beta_is_tensor else out
    if beta_is_tensor and beta_ptr.numel() not in (1, batch):
        raise ValueError(f"gemm_epilogue: beta has {beta_ptr.numel()} entries; give one, or one per matrix ({batch})")
    if symmetric:
        BN = BM
        tiles = _upper_tiles(triton.cdiv(M, BM), a.device)
        grid = (tiles.numel() // 2, 1, batch)
    else:
        tiles = out
        grid = (triton.cdiv(M, BM), triton.cdiv(N, BN), batch)
    _gemm_epilogue_kernel[grid](
        a, b, c_, d_, out, tiles, M, N, K,
        *(x for t in (a, b, c_, d_, out) for x in _strides(t, bool(lead))),
        float(alpha), 0.0 if beta_is_tensor else float(beta), float(delta), beta_ptr,
        int(beta_is_tensor and beta_ptr.numel() > 1),
        HAS_C=c is not None, HAS_D=d is not None, BETA_FROM_PTR=beta_is_tensor, SYMMETRIC=symmetric,
        UPCAST=INTERPRET and low, PRECISION=_precision(a, b), BM=BM, BN=BN, BK=BK, num_warps=warps,
    )
    return out


def project_moments(G, M, U, V, *, beta1, beta2, g_coef, m_coef, mix_scale, bias2, eps):
    """Triton version of `reprolab.kernels.cosmos.reference.project_moments` (same contract, batches too)."""
    m, n = G.shape[-2:]
    r = U.shape[-1]
    lead = tuple(G.shape[:-2])
    if M.shape != G.shape or tuple(U.shape) != (*lead, n, r) or tuple(V.shape) != (*lead, m, r):
        raise ValueError(f"project_moments: shapes G {tuple(G.shape)}, M {tuple(M.shape)}, U {tuple(U.shape)}, "
                         f"V {tuple(V.shape)} do not fit G (m, n), M (m, n), U (n, r), V (m, r)")
    for name, t in (("M", M), ("U", U), ("V", V)):
        if t.dtype != torch.float32:
            raise ValueError(f"project_moments: {name} must be float32 (COSMOS state), got {t.dtype}")
    BR = max(16, triton.next_power_of_2(r))
    BM = 64 if BR <= 64 else 32
    BK = 32
    P_G = torch.empty(*lead, m, r, device=G.device, dtype=torch.float32)
    P_hat = torch.empty_like(P_G)
    D = torch.empty_like(P_G)
    _project_moments_kernel[(triton.cdiv(m, BM), lead[0] if lead else 1)](
        G, M, U, V, P_G, P_hat, D, m, n, r,
        *(x for t in (G, M, U, V, P_G) for x in _strides(t, bool(lead))),
        float(beta1), float(beta2), float(g_coef), float(m_coef), float(mix_scale), 1.0 / math.sqrt(bias2), float(eps),
        PRECISION="ieee", BM=BM, BK=BK, BR=BR, num_warps=4,
    )
    return P_G, P_hat, D
