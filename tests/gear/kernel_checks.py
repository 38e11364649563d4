"""Kernel parity checks, run in a subprocess with TRITON_INTERPRET=1 set before triton is imported
(see test_kernels.py). Prints one JSON dict of measured differences."""
from __future__ import annotations

import json
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402

from reprolab.kernels.gear import quant, quant_triton  # noqa: E402
from reprolab.kernels.gear.attention import decode_attention  # noqa: E402
from methods.gear.compress import CodecSpec, QuantSpec, compress  # noqa: E402
from methods.gear.store import PackedStore  # noqa: E402


def quant_checks() -> dict:
    out = {}
    torch.manual_seed(0)
    for bits, group, L in [(2, 64, 128), (4, 32, 96), (8, 16, 48), (2, 20, 40)]:  # 20: a whole-chunk (KCVT) group
        x = torch.randn(3, 5, L) * torch.rand(3, 5, 1) * 8
        x[0, 0, :group] = 1.5  # a constant group
        codes, scale, mn, res = quant_triton.quantize_pack(x, bits, group, residual=True)
        c2, s2, m2 = quant.quantize_pack(x, bits, group)
        key = f"b{bits}g{group}"
        out[key + "_codes_equal"] = bool(torch.equal(codes, c2))
        out[key + "_params_equal"] = bool(torch.equal(scale, s2) and torch.equal(mn, m2))
        out[key + "_residual_err"] = float((res - (x - quant.unpack_dequantize(c2, s2, m2, bits))).abs().max())
    return out


def attention_checks() -> dict:
    out = {}
    for name, (B, H, Hq, d, bits, g, s, chunks) in {
        "gear_gqa": (2, 2, 4, 32, 2, 16, 0.05, [(48, 4), (16, 2), (16, 2)]),
        "kivi_mha": (1, 2, 2, 64, 4, 32, 0.0, [(64, 0), (32, 0)]),
        "kcvt_4bit": (2, 1, 2, 16, 4, None, 0.02, [(40, 2), (20, 2)]),
        "gear_d128": (1, 1, 2, 128, 2, 64, 0.02, [(128, 4), (64, 2)]),
    }.items():
        torch.manual_seed(1)
        codec = CodecSpec(QuantSpec(bits, "channel", g), QuantSpec(bits, "token", g), outlier_frac=s)
        sk, sv = PackedStore(codec.key, H, d), PackedStore(codec.value, H, d)
        for n, r in chunks:
            k, v = torch.randn(B, H, n, d).half(), torch.randn(B, H, n, d).half()
            sk.append(compress(k, "key", codec, r, torch.rand(d, r)))
            sv.append(compress(v, "value", codec, r, torch.rand(d, r)))
        q = torch.randn(B, Hq, d)
        nb = 7
        bk, bv = torch.randn(B, H, nb, d).half(), torch.randn(B, H, nb, d).half()
        mask = torch.ones(B, sk.n_tokens + nb, dtype=torch.bool)
        mask[-1, :5] = False  # left padding of the last sequence
        scaling = d**-0.5
        tw = decode_attention(q, sk, sv, bk, bv, scaling, mask, backend="torch")
        tr = decode_attention(q, sk, sv, bk, bv, scaling, mask, backend="triton")

        def sdpa(kk, vv):
            K = torch.cat([kk.float(), bk.float()], 2).repeat_interleave(Hq // H, 1)
            V = torch.cat([vv.float(), bv.float()], 2).repeat_interleave(Hq // H, 1)
            return torch.nn.functional.scaled_dot_product_attention(q[:, :, None], K, V, attn_mask=mask[:, None, None], scale=scaling)[:, :, 0]

        ref32 = sdpa(sk.materialize(torch.float32), sv.materialize(torch.float32))
        ref16 = sdpa(sk.materialize(), sv.materialize())
        out[name] = {"triton_vs_twin": float((tr - tw).abs().max()), "twin_vs_ref32": float((tw - ref32).abs().max()),
                     "triton_vs_ref32": float((tr - ref32).abs().max()), "triton_vs_ref16": float((tr - ref16).abs().max())}
    return out


if __name__ == "__main__":
    which = sys.argv[1]
    print(json.dumps(quant_checks() if which == "quant" else attention_checks()))
