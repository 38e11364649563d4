"""GEAR compression math: spec ../shared/papers/gear.md §6 properties 1-6 and 10."""
from __future__ import annotations

import pytest
import torch

from reprolab.kernels.gear import quant
from methods.gear.compress import CodecSpec, QuantSpec, compress, outlier_k, power_iteration, split_outliers
from methods.gear.layout import from_rows, to_rows
from tests.gear import official_ref as ref
from tests.gear.conftest import structured_kv


def codec(bits=2, g=16, s=0.0, mode="paper", storage="packed", kcvt=False):
    gg = None if kcvt else g
    return CodecSpec(QuantSpec(bits, "channel", gg), QuantSpec(bits, "token", gg), outlier_frac=s, outlier_count=mode,
                     storage=storage)


def rel(a, b):
    return ((a.float() - b.float()).norm() / b.float().norm()).item()


# ---- 1. quantiser ----------------------------------------------------------------------------
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantiser_codes_error_bound_and_extremes(bits):
    x = torch.randn(3, 5, 64) * torch.rand(3, 5, 1) * 10
    mn, scale = quant.quant_params(x, bits, 16, torch.float32)
    q = quant.quantize(x, mn, scale, bits)
    assert q.min() >= 0 and q.max() <= 2**bits - 1 and torch.equal(q, q.round())
    xh = quant.dequantize(q, mn, scale)
    delta = scale.repeat_interleave(16, -1)
    assert ((xh - x).abs() <= delta / 2 + 1e-6 * x.abs() + 1e-6).all()
    g, gh = x.unflatten(-1, (-1, 16)), xh.unflatten(-1, (-1, 16))
    # the group minimum is code 0 and the maximum code 2^b - 1: both reconstruct to fp32 rounding
    torch.testing.assert_close(gh.amin(-1), g.amin(-1), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gh.amax(-1), g.amax(-1), rtol=1e-6, atol=1e-5)


def test_quantiser_many_bits_is_exact_and_constant_groups_have_no_nan():
    x = torch.randn(4, 64)
    assert rel(quant.fake_quantize(x, 20, 16), x) < 1e-5
    c = torch.full((2, 32), 3.25)
    codes, scale, mn = quant.quantize_pack(c, 2, 16)
    out = quant.unpack_dequantize(codes, scale, mn, 2)
    assert torch.isfinite(out).all() and torch.equal(out, c)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_pack_roundtrip_and_fp16_parameters(bits):
    x = torch.randn(2, 3, 128) * 5
    codes, scale, mn = quant.quantize_pack(x, bits, 32)
    assert codes.dtype == torch.uint8 and codes.shape[-1] == 128 * bits // 8
    assert scale.dtype == mn.dtype == torch.float16 and scale.shape[-1] == 4
    q = quant.unpack(codes, bits)
    assert torch.equal(quant.pack(q, bits), codes)
    per = 8 // bits  # the byte layout: code j of a byte in bits [j bits, (j + 1) bits)
    byte = sum(q.unflatten(-1, (-1, per))[..., j].int() << (j * bits) for j in range(per))
    assert torch.equal(codes, byte.to(torch.uint8)) and torch.equal(quant.pack(q.float(), bits), codes)
    # codes are the nearest level for the *stored* fp16 parameters
    xh = quant.dequantize(q.float(), mn, scale)
    assert ((xh - x).abs() <= scale.float().repeat_interleave(32, -1) / 2 + 1e-4).all()


# ---- 2. axes and layouts ---------------------------------------------------------------------
def test_channel_and_token_layouts_group_the_right_entries():
    B, H, n, d, g = 2, 4, 32, 8, 16
    x = torch.randn(B, H, n, d)
    kc = compress(x, "key", codec(g=g, storage="packed"), 0, None)
    vc = compress(x, "value", codec(g=g, storage="packed"), 0, None)
    assert kc.scale.shape == (B, H * d, n // g)          # keys: [B, H, d_H, n/g] flattened head-major
    assert vc.scale.shape == (B, n, H * d // g)          # values: [B, n, H·d_H/g], heads concatenated
    # per-channel key groups = per-token groups of the transposed matrix (one explicit loop)
    for b, h, c, j in [(0, 0, 0, 0), (1, 2, 7, 1), (0, 1, 3, 1)]:
        grp = x[b, h, j * g : (j + 1) * g, c]
        lo, step = grp.min(), (grp.max() - grp.min()) / 3
        assert kc.mn[b, h * d + c, j].item() == pytest.approx(lo.item(), rel=1e-3, abs=1e-3)
        assert kc.scale[b, h * d + c, j].item() == pytest.approx(step.item(), rel=1e-3, abs=1e-3)
    for b, t, j in [(0, 0, 0), (1, 31, 1)]:
        grp = x[b].permute(1, 0, 2).reshape(n, H * d)[t, j * g : (j + 1) * g]
        assert vc.mn[b, t, j].item() == pytest.approx(grp.min().item(), rel=1e-3, abs=1e-3)
    for layout in ("channel", "token", "tensor", "dim"):
        assert torch.equal(from_rows(to_rows(x, layout), layout, x.shape), x)


# ---- 3. sparse outliers ----------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["paper", "official"])
@pytest.mark.parametrize("kind", ["key", "value"])
def test_outliers_exact_counted_and_out_of_the_ranges(mode, kind):
    x = structured_kv(n=64, d=32)
    c = codec(bits=2, g=16, s=0.1, mode=mode)
    ch = compress(x, kind, c, 0, None)
    spec = c.quant(kind)
    k = outlier_k(0.1, mode, x.shape, spec.layout)
    rows = to_rows(x, spec.layout)
    assert ch.out_idx.shape == (*rows.shape[:2], 2 * k)
    expect = {"paper": -(-0.1 * rows.shape[-1] // 2), "official": int(int(x.numel() * 0.1) / 2 / 64 / 2)}[mode]
    assert k == min(int(expect), rows.shape[-1] // 2)
    base = to_rows(ch.backbone().float(), spec.layout)
    idx = ch.out_idx.long()
    assert torch.equal(base.gather(-1, idx), rows.gather(-1, idx).half().float())  # exact (fp16) at outliers
    # the k smallest and k largest of each row, by signed value
    srt = rows.sort(-1).values
    assert torch.equal(rows.gather(-1, idx[..., :k]).sort(-1).values, srt[..., :k])
    assert torch.equal(rows.gather(-1, idx[..., k:]).sort(-1).values, srt[..., -k:])
    # outliers do not enter the ranges: non-outliers are within Δ/2 of the mean-filled quantiser's grid
    filled, _, _ = split_outliers(rows, k, "mean")
    mn, scale = quant.quant_params(filled, 2, 16, torch.float16)
    keep = torch.ones_like(rows, dtype=torch.bool).scatter(-1, idx, False)
    err = (base - rows).abs()[keep]
    bound = (scale.float().repeat_interleave(16, -1) / 2)[keep] + 2e-3 * rows.abs()[keep] + 1e-3
    assert (err <= bound).all()


# ---- 4. low rank -----------------------------------------------------------------------------
def test_power_iteration_reaches_eckart_young_and_is_orthonormal():
    torch.manual_seed(0)
    # a decaying spectrum (sigma_i = 0.75^i) so that 30 rounds converge to the top-r subspace
    U = torch.linalg.qr(torch.randn(3, 2, 64, 16)).Q
    V = torch.linalg.qr(torch.randn(3, 2, 16, 16)).Q
    R = U @ torch.diag(0.75 ** torch.arange(16.0)) @ V.transpose(-1, -2)
    G = torch.randn(3, 2, 64, 16)  # Gaussian: loop = 3 within 10 % of the optimum
    for r in (1, 4):
        s = torch.linalg.svdvals(R)
        best = s[..., r:].square().sum(-1).sqrt()
        Q, P = power_iteration(R, r, 30, torch.rand(16, r), orthogonalize_every=True)
        torch.testing.assert_close((R - Q @ P.transpose(-1, -2)).norm(dim=(-2, -1)), best, rtol=1e-4, atol=1e-6)
        best = torch.linalg.svdvals(G)[..., r:].square().sum(-1).sqrt()
        Q3, P3 = power_iteration(G, r, 3, torch.rand(16, r))
        err3 = (G - Q3 @ P3.transpose(-1, -2)).norm(dim=(-2, -1))
        assert (err3 <= 1.10 * best).all()
        eye = torch.eye(r).expand(3, 2, r, r)
        assert (Q3.transpose(-1, -2) @ Q3 - eye).abs().max() < 1e-5
        assert torch.linalg.matrix_rank(Q3 @ P3.transpose(-1, -2)).max() <= r


@pytest.mark.parametrize("kind", ["key", "value"])
@pytest.mark.parametrize("storage", ["packed", "simulated"])
def test_row_blocks_give_what_one_block_gives(monkeypatch, kind, storage):
    """On the CPU a chunk is compressed in blocks (row blocks: whole heads for keys, whole tokens for
    values; then the low-rank fit per (sequence, head) matrix): codes, parameters, outliers, factors
    and reconstruction bit-identical to one block of the whole chunk, and to the unblocked recipe."""
    import methods.gear.compress as gc

    x = structured_kv(n=128, d=32).half()
    c = codec(s=0.05, storage=storage)
    p0 = torch.rand(32, 4, generator=torch.Generator().manual_seed(0))
    B, H, n, _ = x.shape
    monkeypatch.setattr(gc, "CPU_BLOCK", 1)  # the smallest blocks: one head / one token of one sequence each
    assert len(gc.row_blocks(tuple(x.shape), c.quant(kind).layout, x.device)) == B * (H if kind == "key" else n)
    assert len(gc.head_blocks(tuple(x.shape), x.device)) == B * H
    small = gc.compress(x, kind, c, 4, p0)
    monkeypatch.setattr(gc, "CPU_BLOCK", x.numel())
    assert len(gc.row_blocks(tuple(x.shape), c.quant(kind).layout, x.device)) == len(gc.head_blocks(x.shape, x.device)) == 1
    whole = gc.compress(x, kind, c, 4, p0)
    for name in ("codes", "scale", "mn", "out_idx", "out_val", "lr_q", "lr_p", "dense"):
        a, b = getattr(small, name), getattr(whole, name)
        assert (a is None and b is None) or torch.equal(a, b), name
    assert torch.equal(small.materialize(), whole.materialize())
    # the recipe unblocked, from the module's own steps (compress's docstring): the same tensors
    spec = c.quant(kind)
    rows = to_rows(x.float(), spec.layout)
    rows, idx, val = split_outliers(rows, gc.outlier_k(c.outlier_frac, c.outlier_count, tuple(x.shape), spec.layout))
    mn, scale = quant.quant_params(rows, spec.bits, spec.group, torch.float16 if storage == "packed" else torch.float32)
    q = quant.quantize(rows, mn, scale, spec.bits)
    base = from_rows(quant.dequantize(q, mn, scale).scatter(-1, idx, val), spec.layout, x.shape).half()
    Q, P = power_iteration(x.float() - base.float(), 4, c.loops, p0)
    if storage == "packed":
        assert torch.equal(small.codes, quant.pack(q, spec.bits)) and torch.equal(small.scale, scale)
        assert torch.equal(small.out_idx, idx.int()) and torch.equal(small.out_val, val.half())
        assert torch.equal(small.lr_q, Q.half()) and torch.equal(small.lr_p, P.half())
    else:
        assert torch.equal(small.dense, (base.float() + Q @ P.transpose(-1, -2)).half())


def test_reductions_r0_s0_and_kivi_bit_exact():
    x = structured_kv(n=64, d=32).half()
    p0 = torch.rand(32, 4)
    for kind in ("key", "value"):
        for storage in ("packed", "simulated"):
            gear_r0 = compress(x, kind, codec(s=0.05, storage=storage), 0, None).materialize()
            qs = compress(x, kind, codec(s=0.05, storage=storage), 0, None).materialize()
            assert torch.equal(gear_r0, qs)  # r = 0: GEAR = quantisation + sparse
            gear_s0 = compress(x, kind, codec(s=0.0, storage=storage), 4, p0).materialize()
            gear_l = compress(x, kind, codec(s=0.0, storage=storage), 4, p0).materialize()
            assert torch.equal(gear_s0, gear_l)  # s = 0: GEAR = GEAR-L
        # s = 0, r = 0: GEAR = KIVI, bit for bit against the official functions (fp16 input, fp32 math)
        kivi = compress(x, kind, codec(s=0.0, storage="simulated"), 0, None).materialize()
        official = ref.channel_quant(x, 2, 16) if kind == "key" else ref.token_quant(x, 2, 16)
        assert torch.equal(kivi, official)


# ---- 5. monotonicity -------------------------------------------------------------------------
def test_error_ordering_over_seeds():
    errs = {k: 0.0 for k in ("quant", "quant+sparse", "gear_l", "gear")}
    ranks, fracs = {r: 0.0 for r in (0, 1, 2, 4, 8)}, {s: 0.0 for s in (0.0, 0.02, 0.05, 0.1)}
    for seed in range(10):
        x = structured_kv(n=128, d=32, seed=seed)
        p0 = torch.rand(32, 8, generator=torch.Generator().manual_seed(seed))
        for kind in ("key", "value"):
            e = lambda s, r: rel(compress(x, kind, codec(s=s), r, p0[:, :r]).materialize(), x)  # noqa: E731
            errs["quant"] += e(0, 0)
            errs["quant+sparse"] += e(0.02, 0)
            errs["gear_l"] += e(0, 4)
            errs["gear"] += e(0.02, 4)
            for r in ranks:
                ranks[r] += e(0.02, r)
            for s in fracs:
                fracs[s] += e(s, 2)
    assert errs["gear"] <= errs["gear_l"] and errs["gear"] <= errs["quant+sparse"] <= errs["quant"]
    assert errs["gear_l"] < errs["quant"]
    r_err = [ranks[r] for r in sorted(ranks)]
    s_err = [fracs[s] for s in sorted(fracs)]
    assert all(a > b for a, b in zip(r_err, r_err[1:])) and all(a > b for a, b in zip(s_err, s_err[1:]))


# ---- 6. batch independence -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["key", "value"])
def test_batch_equals_each_sequence_alone(kind):
    x = structured_kv(B=3, n=64, d=32)
    p0 = torch.rand(32, 4)
    c = codec(s=0.05)
    whole = compress(x, kind, c, 4, p0)
    for b in range(3):
        one = compress(x[b : b + 1], kind, c, 4, p0)
        assert torch.equal(one.codes, whole.codes[b : b + 1]) and torch.equal(one.out_idx, whole.out_idx[b : b + 1])
        torch.testing.assert_close(one.materialize(), whole.materialize()[b : b + 1], rtol=0, atol=2e-3)


# ---- 10. parity with the official reference ----------------------------------------------------
@pytest.mark.parametrize("kind", ["key", "value"])
@pytest.mark.parametrize("bits", [2, 4])
def test_official_mode_matches_official_gear(kind, bits):
    x = structured_kv(B=2, H=4, n=128, d=32)
    torch.manual_seed(123)
    want = ref.gear(x, bits, 64, 0.02, 4, 3, kind)
    torch.manual_seed(123)
    p0 = torch.rand(2, 4, 32, 4)
    torch.rand(2, 4, 128, 4)  # the official code also draws an (unused) Q start
    c = CodecSpec(QuantSpec(bits, "channel", 64), QuantSpec(bits, "token", 64), outlier_frac=0.02,
                  outlier_count="official", storage="simulated")
    got = compress(x, kind, c, 4, p0).materialize()
    torch.testing.assert_close(got.float(), want.half().float(), rtol=1e-5, atol=1e-5)


def test_kcvt_groups_span_the_whole_axis():
    x = structured_kv(n=40, d=32)
    kc = compress(x, "key", codec(bits=4, kcvt=True), 0, None)
    vc = compress(x, "value", codec(bits=4, kcvt=True), 0, None)
    assert kc.scale.shape[-1] == 1 and vc.scale.shape[-1] == 1
    assert torch.equal(compress(x.half(), "key", codec(bits=4, kcvt=True, storage="simulated"), 0, None).materialize(),
                       ref.channel_quant(x.half(), 4, 40))


def test_reproduces_the_spec_numbers_of_the_official_functions():
    """§5.1-A: B=2, H=4, n=128, d_H=32, channel 3 x8, seed 0, b=2, g=64, s=2 %, r=4 (official count)."""
    torch.manual_seed(0)
    x = torch.randn(2, 4, 128, 32)
    x[..., 3] *= 8
    spec = {"key": [0.438, 0.393, 0.235, 0.206], "value": [0.799, 0.439, 0.630, 0.366]}  # KIVI, +sparse, GEAR-L, GEAR
    for kind, want in spec.items():
        got = []
        for s, r in [(0, 0), (0.02, 0), (0, 4), (0.02, 4)]:
            c = CodecSpec(QuantSpec(2, "channel", 64), QuantSpec(2, "token", 64), outlier_frac=s, outlier_count="official",
                          storage="simulated")
            got.append(rel(compress(x, kind, c, r, torch.rand(32, r, generator=torch.Generator().manual_seed(0))).materialize(), x))
        assert got == pytest.approx(want, abs=0.003), (kind, got)
