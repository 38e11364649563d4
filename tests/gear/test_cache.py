"""GEARCache and the baseline caches: streaming (§6.7), equivalence (§6.8), memory formula (§6.9),
the H2O cache, and every bad input of the issue."""
from __future__ import annotations

import math

import pytest
import torch
from transformers import DynamicCache

from methods.fp16 import FP16Config
from methods.gear import GearConfig, GEARCache
from methods.gear.compress import CodecSpec, QuantSpec
from methods.group_quant import GroupQuantConfig
from methods.h2o import H2OConfig
from methods.kcvt import KCVTConfig
from methods.kivi import KIVIConfig
from methods.outlier_quant import OutlierQuantConfig
from methods.uniform_quant import UniformQuantConfig
from reprolab.checks import ConfigError
from tests.gear.conftest import tiny_llama

ALL = [FP16Config(), KIVIConfig(buffer=16, group=16), KCVTConfig(buffer=16), GearConfig(buffer=16, group=16), GearConfig(buffer=16, group=16, outlier_frac=0.0),
       GroupQuantConfig(group=32, buffer=16), GroupQuantConfig(layout="dim", storage="simulated", buffer=16), UniformQuantConfig(buffer=16),
       OutlierQuantConfig(buffer=16), H2OConfig(heavy_ratio=0.2, recent_ratio=0.2),
       GearConfig(buffer=16, group=16, storage="simulated"), GearConfig(buffer=16, group=16, stream_mode="official_recompress"),
       GearConfig(buffer=16, group=16, attention="fused")]


def feed(cache, steps, B=2, H=2, d=16, prompt=40, dtype=torch.float16, seed=0):
    """Prefill ``prompt`` tokens then ``steps`` single tokens into layer 0; returns the last K/V."""
    g = torch.Generator().manual_seed(seed)
    k = v = None
    for n in [prompt] + [1] * steps:
        k, v = cache.update(torch.randn(B, H, n, d, generator=g).to(dtype), torch.randn(B, H, n, d, generator=g).to(dtype), 0)
    return k, v


# ---- 7. streaming ------------------------------------------------------------------------------
@pytest.mark.parametrize("prompt", [40, 48, 7])
def test_paper_chunked_counts(prompt):
    n_b = 16

    def step(cache):
        x = torch.randn(2, 2, 1, 16).half()
        return cache.update(x, x, 0)[0]

    # (a) what attention sees: full chunks compressed, everything newer fp16 in the buffer
    cache = GEARCache(1, CodecSpec(QuantSpec(2, "channel", 16), QuantSpec(2, "token", 16)), buffer=n_b, rank_prefill=4, rank_decode=2)
    layer = cache.layers[0]
    compressed_at = []
    k, _ = feed(cache, 0, prompt=prompt)
    assert k.shape[2] == prompt and layer.compressed_tokens == n_b * (prompt // n_b)  # prefill saw the fp16 prompt
    for t in range(1, 60):
        before = layer.compressed_tokens
        k = step(cache)
        total = prompt + t
        assert k.shape[2] == total and layer.get_seq_length() == total  # the materialised cache: every token
        assert layer.compressed_tokens == n_b * ((total - 1) // n_b)
        assert 1 <= layer.buffer_tokens <= n_b
        if layer.compressed_tokens != before:
            compressed_at.append(t)
    # the prompt chunk right at prefill; then exactly at the steps that follow a full buffer
    assert compressed_at == [t for t in range(1, 60) if (prompt + t - 1) % n_b == 0 and prompt % n_b + t - 1 >= n_b]
    ranks = [q.shape[-1] for _, q, _ in layer.store_k.lowrank for _ in range(q.shape[2])]  # one per chunk
    if prompt >= n_b:
        assert ranks[0] == 4 and set(ranks[1:]) == {2}  # prompt chunk: rank_prefill; decode chunks: rank_decode
        assert layer.store_k.lowrank[0][1].shape[2:4] == (1, n_b * (prompt // n_b))  # the prompt is one chunk
        assert len(ranks) == 1 + (prompt % n_b + 59 - 1) // n_b
        assert len(layer.store_k.lowrank) == 2  # the decode chunks' factors are stacked in one group
    # (b) after flushing, the buffer holds < n_b tokens and floor((n + t) / n_b) chunks' worth is compressed
    cache = GEARCache(1, CodecSpec(QuantSpec(2, "channel", 16), QuantSpec(2, "token", 16)), buffer=n_b, rank_prefill=4, rank_decode=2)
    layer = cache.layers[0]
    feed(cache, 0, prompt=prompt)
    for t in range(1, 40):
        step(cache)
        cache.flush()
        assert layer.buffer_tokens < n_b and layer.compressed_tokens == n_b * ((prompt + t) // n_b)


def test_official_recompress_keeps_prompt_fp16_then_recompresses_everything():
    cache = GEARCache(1, CodecSpec(QuantSpec(2, "channel", 16), QuantSpec(2, "token", 16), storage="simulated"), buffer=16,
                      rank_decode=2, stream_mode="official_recompress")
    layer = cache.layers[0]
    feed(cache, 0, prompt=40)
    for t in range(1, 30):
        feed_k = torch.randn(2, 2, 1, 16).half()
        cache.update(feed_k, feed_k, 0)
        past = 40 + t - 1
        last_multiple = 16 * (past // 16)
        # the whole cache up to the last multiple of n_b seen as L_past was recompressed as ONE chunk
        expect = max((p for p in range(40, past + 1) if p % 16 == 0), default=0)
        assert layer.compressed_tokens == expect and layer.compressed_tokens <= last_multiple
        assert layer.store_k.n_tokens == expect


# ---- 8. equivalence ----------------------------------------------------------------------------
def test_compression_off_equals_dynamic_cache_in_generate():
    model = tiny_llama()
    ids = torch.randint(0, 64, (2, 30))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    kw = dict(attention_mask=mask, max_new_tokens=24, do_sample=False, output_scores=True, return_dict_in_generate=True)
    ref = model.generate(ids, cache=DynamicCache(config=model.config), **kw)
    off = model.generate(ids, cache=GEARCache(2, None, buffer=16), **kw)
    assert torch.equal(ref.sequences, off.sequences)
    assert all(torch.equal(a, b) for a, b in zip(ref.scores, off.scores))


def test_h2o_with_room_for_everything_equals_dynamic_cache():
    model = tiny_llama()
    ids = torch.randint(0, 64, (2, 30))
    kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False, output_scores=True, return_dict_in_generate=True)
    ref = model.generate(ids, cache=DynamicCache(config=model.config), **kw)
    h2o = H2OConfig(heavy_ratio=1.0, recent_ratio=1.0)  # budget 60 > 50 tokens: nothing is evicted
    h2o.prepare_model(model)
    out = model.generate(ids, cache=h2o.make_cache(model.config), **kw)
    model.set_attn_implementation("sdpa")
    assert torch.equal(ref.sequences, out.sequences)
    assert max((a - b).abs().max().item() for a, b in zip(ref.scores, out.scores)) < 1e-4


def test_h2o_keeps_budget_recent_window_and_heavy_hitters():
    model = tiny_llama()
    h2o = H2OConfig(heavy_ratio=0.2, recent_ratio=0.1)
    h2o.prepare_model(model)
    cache = h2o.make_cache(model.config)
    ids = torch.randint(0, 64, (1, 50))
    model.generate(ids, attention_mask=torch.ones_like(ids), cache=cache, max_new_tokens=10, do_sample=False)
    model.set_attn_implementation("sdpa")
    layer = cache.layers[0]
    assert layer.budget == 10 + 5 and layer.keys.shape[2] == layer.budget and layer.seen == 59
    assert (layer.scores[..., -layer.recent:] > -math.inf).all()
    assert cache.nbytes() < cache.fp16_bytes() * 4 * 15 / 59 + 1  # fp32 model: 4 bytes per entry, 15 of 59 tokens


@pytest.mark.parametrize("method", ALL, ids=lambda m: type(m).__name__)
def test_every_cache_generates_with_gqa_and_padding(method):
    model = tiny_llama(kv_heads=2, heads=4)
    method.prepare_model(model)
    ids = torch.randint(0, 64, (2, 37))
    mask = torch.ones_like(ids)
    mask[0, :5] = 0
    cache = method.make_cache(model.config)
    out = model.generate(ids, attention_mask=mask, cache=cache, max_new_tokens=30, do_sample=False)
    model.set_attn_implementation("sdpa")
    assert out.shape == (2, 67)
    layer = cache.layers[0]
    assert layer.keys.shape[1] == 2  # KV heads, compressed before GQA's repeat


@pytest.mark.parametrize("beams", [1, 2])
def test_fused_attention_matches_materialized(beams):
    """Greedy, and beam search (the packed store reordered between steps)."""
    model = tiny_llama()
    ids = torch.randint(0, 64, (2, 40))
    mask = torch.ones_like(ids)
    mask[1, :6] = 0
    scores = {}
    for attention in ("materialize", "fused"):
        m = GearConfig(buffer=16, group=16, attention=attention)
        m.prepare_model(model)
        out = model.generate(ids, attention_mask=mask, cache=m.make_cache(model.config), max_new_tokens=30, do_sample=False,
                             num_beams=beams, output_scores=True, return_dict_in_generate=True)
        scores[attention] = torch.stack(out.scores)
    model.set_attn_implementation("sdpa")
    torch.testing.assert_close(scores["fused"], scores["materialize"], rtol=0, atol=2e-3)


def test_fused_cache_without_fused_attention_is_an_error():
    model = tiny_llama()
    cache = GearConfig(buffer=16, group=16, attention="fused").make_cache(model.config)  # prepare_model not called
    ids = torch.randint(0, 64, (1, 40))
    with pytest.raises(RuntimeError, match="prepare_model"):
        model.generate(ids, attention_mask=torch.ones_like(ids), cache=cache, max_new_tokens=5, do_sample=False)


# ---- 9. memory formula -----------------------------------------------------------------------
@pytest.mark.parametrize("method", [GearConfig(buffer=16, group=16), KIVIConfig(buffer=16, group=16), KCVTConfig(buffer=16),
                                    GearConfig(buffer=16, group=16, outlier_frac=0.0), GroupQuantConfig(group=32, buffer=16)],
                         ids=lambda m: type(m).__name__ + str(getattr(m, "outlier_frac", "")))
def test_measured_bytes_equal_the_formula(method):
    model = tiny_llama()
    cache = method.make_cache(model.config)
    feed(cache, 45, prompt=40)  # fp16 K/V, as at paper scale
    layer = cache.layers[0]
    assert layer.compressed_tokens > 0 and layer.nbytes() * 8 == layer.nominal_bits()


def test_kv_size_of_the_paper_setting():
    """b=2, g=64, s=2%, r=4, d_H=128, n ≈ 1000 (here 1024, a multiple of g), H·d_H = 4096: ≈ 25 %."""
    codec = CodecSpec(QuantSpec(2, "channel", 64), QuantSpec(2, "token", 64), outlier_frac=0.02)
    cache = GEARCache(1, codec, buffer=1024, rank_prefill=4)
    cache.update(torch.randn(1, 32, 1024, 128).half(), torch.randn(1, 32, 1024, 128).half(), 0)
    cache.flush()
    frac = cache.nbytes() / cache.fp16_bytes()
    expect = (2 + 32 / 64 + 0.02 * 48 + 16 * 4 * (1024 + 128) / (1024 * 128)) / 16
    assert cache.nbytes() * 8 == cache.layers[0].nominal_bits()
    assert frac == pytest.approx(expect, rel=0.01) and 0.245 < frac < 0.256


# ---- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    (dict(buffer=40, group=64), "not a multiple of method.group"),
    (dict(bits=3), "method.bits=3"),
    (dict(bits=16), "method.bits=16"),
    (dict(outlier_frac=0.5), "method.outlier_frac"),
    (dict(outlier_frac=-0.1), "method.outlier_frac"),
    (dict(stream_mode="recompress"), "method.stream_mode"),
    (dict(attention="fused", storage="simulated"), "storage=packed"),
])
def test_bad_config_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        GearConfig(**kwargs)


def test_bad_rank_and_group_for_the_model():
    model = tiny_llama()  # head_dim 16
    with pytest.raises(ValueError, match="rank_prefill=32 exceeds min"):
        GearConfig(buffer=32, group=32, rank_prefill=32).make_cache(model.config)
    with pytest.raises(ValueError, match="group=48 does not divide"):
        KIVIConfig(buffer=48, group=48).make_cache(model.config)
    from methods.gear.compress import compress, power_iteration

    with pytest.raises(ValueError, match="rank=5 exceeds"):
        power_iteration(torch.randn(4, 16), 5, 3, torch.rand(16, 5))
    with pytest.raises(ValueError, match="multiple of the group size"):
        compress(torch.randn(1, 2, 24, 16), "key", CodecSpec(QuantSpec(2, "channel", 16), QuantSpec(2, "token", 16)), 0, None)


def test_models_the_cache_cannot_serve():
    from transformers import LlamaConfig, T5Config

    with pytest.raises(ValueError, match="encoder-decoder"):
        GearConfig().make_cache(T5Config())
    hybrid = LlamaConfig(num_hidden_layers=2)
    hybrid.layer_types = ["full_attention", "linear_attention"]
    with pytest.raises(ValueError, match="linear_attention"):
        GearConfig().make_cache(hybrid)


def test_sliding_window_model_is_served_exactly_through_the_mask():
    """Mistral-style sliding window shorter than the sequence: the mask hides old tokens, so a cache
    with compression off still equals DynamicCache (which drops them)."""
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    model = MistralForCausalLM(MistralConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2, sliding_window=12)).eval()
    ids = torch.randint(0, 64, (1, 20))
    kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False, output_scores=True, return_dict_in_generate=True)
    ref = model.generate(ids, cache=DynamicCache(config=model.config), **kw)
    out = model.generate(ids, cache=GEARCache(2, None), **kw)
    assert torch.equal(ref.sequences, out.sequences)
    assert max((a - b).abs().max().item() for a, b in zip(ref.scores, out.scores)) < 1e-5


def test_unsupported_transformers_version(monkeypatch):
    """(Patching transformers.__version__ would not do: the first model import can swap the
    ``transformers`` module object in sys.modules, so the patch would land on a stale module.)"""
    import methods.gear.cache as cache_module

    config = tiny_llama().config
    monkeypatch.setattr(cache_module, "transformers_version", lambda: "4.38.2")
    with pytest.raises(RuntimeError, match="transformers 4.38.2 is not supported.*transformers>=5.24,<6"):
        GearConfig(group=16).make_cache(config)


# ---- batch reordering (beam search) and cropping ------------------------------------------------
REORDERABLE = [m for m in ALL if not isinstance(m, H2OConfig) and getattr(m, "attention", "") != "fused"]


@pytest.mark.parametrize("method", REORDERABLE, ids=lambda m: type(m).__name__)
def test_reordering_the_batch_equals_feeding_it_reordered(method):
    """reorder_cache / batch_select_indices move every stored piece (buffer, stores, working copy).
    Fused GEAR (attention reads the packed store): test_fused_attention_matches_materialized[2]."""
    config = tiny_llama().config
    g = torch.Generator().manual_seed(3)
    chunks = [torch.randn(3, 2, n, 16, generator=g).half() for n in (40, 1, 1, 1)]
    perm = torch.tensor([2, 0, 1])
    a, b = method.make_cache(config), method.make_cache(config)
    for x in chunks[:2]:
        a.update(x, -x, 0)
        b.update(x[perm], -x[perm], 0)
    a.reorder_cache(perm)
    for x in chunks[2:]:
        ka, va = a.update(x[perm], -x[perm], 0)
        kb, vb = b.update(x[perm], -x[perm], 0)
    assert torch.equal(ka, kb) and torch.equal(va, vb)
    a.batch_select_indices(torch.tensor([1]))
    assert a.layers[0].keys.shape[0] == 1
    if isinstance(a, GEARCache):
        assert 3 * a.nbytes() == b.nbytes() and 3 * a.fp16_bytes() == b.fp16_bytes()


def test_h2o_beam_search_with_room_for_everything_equals_dynamic_cache():
    model = tiny_llama()
    ids = torch.randint(0, 64, (2, 20), generator=torch.Generator().manual_seed(0))
    kw = dict(attention_mask=torch.ones_like(ids), max_new_tokens=8, num_beams=3, do_sample=False)
    ref = model.generate(ids, cache=DynamicCache(config=model.config), **kw)
    h2o = H2OConfig(heavy_ratio=1.0, recent_ratio=1.0)
    h2o.prepare_model(model)
    out = model.generate(ids, cache=h2o.make_cache(model.config), **kw)
    model.set_attn_implementation("sdpa")
    assert torch.equal(ref, out)


@pytest.mark.parametrize("method", [GearConfig(buffer=16, group=16), H2OConfig()], ids=lambda m: type(m).__name__)
def test_caches_refuse_cropping_and_name_the_alternative(method):
    cache = method.make_cache(tiny_llama().config)
    with pytest.raises(ValueError, match="cannot be cropped.*use DynamicCache"):
        cache.crop(4)


def test_key_group_index_is_kept_until_a_chunk_is_appended():
    """Fused decode reads it every step: built once per chunk, and right for groups of mixed sizes."""
    from methods.gear.compress import compress
    from methods.gear.store import PackedStore

    codec = CodecSpec(QuantSpec(2, "channel", 16), QuantSpec(2, "token", 16))
    store = PackedStore(codec.key, 2, 16)
    x = torch.randn(1, 2, 48, 16).half()
    store.append(compress(x[:, :, :32], "key", codec, 0, None))
    first = store.key_group_index()
    assert store.key_group_index() is first and first.tolist() == [0] * 16 + [1] * 16
    store.append(compress(x[:, :, 32:40], "key", CodecSpec(QuantSpec(2, "channel", 8), codec.value), 0, None))
    assert store.key_group_index().tolist() == [0] * 16 + [1] * 16 + [2] * 8


def test_lowrank_factors_are_stacked_per_run_of_equal_chunks():
    """Decode attention takes one product per group of consecutive same-size, same-rank chunks; the
    store (and fused attention over it) still equals the chunks reconstructed one by one."""
    from reprolab.kernels.gear.attention import decode_attention
    from methods.gear.compress import compress
    from methods.gear.store import PackedStore

    torch.manual_seed(0)
    B, H, Hq, d = 2, 2, 4, 16
    codec = CodecSpec(QuantSpec(2, "channel", 8), QuantSpec(2, "token", 8), outlier_frac=0.05)
    sk, sv = PackedStore(codec.key, H, d), PackedStore(codec.value, H, d)
    keys, values = [], []
    for n, r in [(32, 4), (16, 2), (16, 2), (16, 0), (16, 2), (8, 2)]:  # a rank-0 chunk breaks the run
        k, v = torch.randn(B, H, n, d).half(), torch.randn(B, H, n, d).half()
        ck, cv = compress(k, "key", codec, r, torch.rand(d, r)), compress(v, "value", codec, r, torch.rand(d, r))
        sk.append(ck)
        sv.append(cv)
        keys.append(ck.materialize())
        values.append(cv.materialize())
    groups = [(start, q.shape[2], q.shape[3], q.shape[4]) for start, q, _ in sk.lowrank]
    assert groups == [(0, 1, 32, 4), (32, 2, 16, 2), (80, 1, 16, 2), (96, 1, 8, 2)]  # (first token, C, n, r)
    K, V = torch.cat(keys, 2), torch.cat(values, 2)
    for store, dense in ((sk, K), (sv, V)):
        torch.testing.assert_close(store.materialize().float(), dense.float(), rtol=1e-3, atol=1e-3)  # fp16 ulp
    q = torch.randn(B, Hq, d)
    bk, bv = torch.randn(B, H, 3, d).half(), torch.randn(B, H, 3, d).half()
    got = decode_attention(q, sk, sv, bk, bv, d**-0.5)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q[:, :, None], torch.cat([K, bk], 2).float().repeat_interleave(2, 1),
        torch.cat([V, bv], 2).float().repeat_interleave(2, 1), scale=d**-0.5)[:, :, 0]
    assert (got - ref).abs().max() < 2e-3  # the chunks' own fp16 reconstructions, attended densely
