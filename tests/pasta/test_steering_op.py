"""PASTA's steering operation through the model's one attention hook (spec autopasta.md §2.3, §6)."""
from __future__ import annotations

import math

import pytest
import torch

from methods.pasta import PASTAConfig
from reprolab.checks import ConfigError
from reprolab.models.attention import highlighting, install
from tests.roles.conftest import tiny_lm

IDS = torch.randint(0, 32, (2, 16), generator=torch.Generator().manual_seed(1))
G = torch.zeros(2, 16, dtype=torch.bool)
G[:, 6:10] = True
HEADS = [[1, 0], [1, 2]]


def attentions(steering=None, highlight=G):
    model = tiny_lm(hidden=64, heads=4)
    model.set_attn_implementation("eager")
    install(model, None, steering)
    with torch.no_grad(), highlighting(model, highlight):
        out = model(input_ids=IDS, output_attentions=True)
    return out.attentions, out.logits


def test_closed_form_and_locality():
    """Steered probabilities = A * s / rowsum(A * s), s = 1 on G, alpha elsewhere (properties 1, 2);
    unselected heads and unsteered layers identical (property 4); rows before G unchanged (5); the mass on
    G follows m' = m / (m + alpha (1 - m)) (6)."""
    alpha = 0.01
    (a0, a1), _ = attentions()
    (s0, s1), _ = attentions(PASTAConfig(alpha=alpha, heads=HEADS))
    assert torch.equal(a0, s0)  # layer 0 is not steered: its attention is bit-identical
    assert torch.equal(a1[:, [1, 3]], s1[:, [1, 3]])
    scale = torch.where(G, 1.0, alpha)[:, None, None, :]
    expected = a1 * scale / (a1 * scale).sum(-1, keepdim=True)
    assert (s1[:, [0, 2]] - expected[:, [0, 2]]).abs().max() < 1e-6
    assert torch.allclose(s1[:, [0, 2], :6], a1[:, [0, 2], :6], atol=1e-6)  # rows whose window has no G token
    m = (a1 * G[:, None, None]).sum(-1)[:, [0, 2], 10:]
    m_steered = (s1 * G[:, None, None]).sum(-1)[:, [0, 2], 10:]
    assert torch.allclose(m_steered, m / (m + alpha * (1 - m)), atol=1e-6)


def test_identity_and_hook_scope():
    """alpha = 1, no heads, or no highlight: logits bit-identical (properties 3, 9)."""
    _, base = attentions()
    for steering, highlight in ((PASTAConfig(alpha=1.0, heads=HEADS), G), (PASTAConfig(heads=[]), G),
                                (PASTAConfig(heads=HEADS), None)):
        assert torch.equal(attentions(steering, highlight)[1], base)


def test_decode_steps_are_steered_and_generated_keys_are_not_scaled():
    """With a KV cache, each new query row is steered; keys past the prompt keep weight 1 (property 7)."""
    steering = PASTAConfig(alpha=0.01, heads=HEADS)
    model = tiny_lm(hidden=64, heads=4)
    model.set_attn_implementation("eager")
    install(model, None, steering)
    plain = tiny_lm(hidden=64, heads=4)
    plain.set_attn_implementation("eager")
    with torch.no_grad(), highlighting(model, G[:, :13]):  # a 13-token prompt, then 3 generated tokens
        from transformers import DynamicCache

        cache = DynamicCache(config=model.config)
        model(input_ids=IDS[:, :-3], cache=cache, use_cache=True)
        out = model(input_ids=IDS[:, -3:], cache=cache, use_cache=True, output_attentions=True)  # 3 "generated" keys
        ref = plain(input_ids=IDS, output_attentions=True)
    a, s = ref.attentions[1][:, :, -3:], out.attentions[1]
    scale = torch.ones(2, 16)
    scale[:, :13] = torch.where(G[:, :13], 1.0, 0.01)
    expected = a * scale[:, None, None] / (a * scale[:, None, None]).sum(-1, keepdim=True)
    assert (s[:, [0, 2]] - expected[:, [0, 2]]).abs().max() < 1e-6


def test_gear_and_pasta_in_one_forward():
    """A compressing cache and the steering in the same forward: with GEAR's buffer larger than the
    sequence nothing is compressed, so GEAR + PASTA equals an fp16 cache + PASTA exactly; once GEAR
    compresses, PASTA still steers (the outputs move) and stays finite."""
    from methods.fp16 import FP16Config
    from methods.gear import GearConfig

    steering = PASTAConfig(alpha=0.01, heads=HEADS)

    def logits(cache_plugin, steer=steering):
        model = tiny_lm(hidden=64, heads=4)
        install(model, cache_plugin, steer)
        with torch.no_grad(), highlighting(model, G):
            return model(input_ids=IDS, cache=cache_plugin.make_cache(model.config), use_cache=True).logits

    roomy = GearConfig(buffer=32, group=16, rank_prefill=2, rank_decode=1)
    assert torch.equal(logits(roomy), logits(FP16Config()))
    tight = GearConfig(buffer=8, group=8, rank_prefill=2, rank_decode=1)
    steered, unsteered = logits(tight), logits(tight, None)
    assert torch.isfinite(steered).all() and not torch.equal(steered, unsteered)


def test_bad_steering_settings_name_the_key():
    with pytest.raises(ConfigError, match="method.alpha"):
        PASTAConfig(alpha=0.0)
    with pytest.raises(ConfigError, match="layer 5"):
        install(tiny_lm(hidden=64, heads=4), None, PASTAConfig(heads=[[5, 0]]))
    from methods.gear import GearConfig

    fused = GearConfig(buffer=16, group=16, attention="fused")
    with pytest.raises(ConfigError, match="kv_cache.attention=materialize"):
        install(tiny_lm(hidden=64, heads=4), fused, PASTAConfig(heads=HEADS))
    assert math.log(0.01) < 0


def test_eager_and_sdpa_agree_and_the_hook_leaves_no_trace():
    """The bias rides on the attention mask: SDPA and eager give the same steered logits (eager vs SDPA
    rounding only); after the `highlighting` block the model is the unsteered one again (property 9)."""
    steering = PASTAConfig(alpha=0.01, heads=HEADS)
    out = {}
    for impl in ("eager", "sdpa"):
        model = tiny_lm(hidden=64, heads=4)
        model.set_attn_implementation(impl)
        install(model, None, steering)
        with torch.no_grad():
            base = model(input_ids=IDS).logits
            with highlighting(model, G):
                out[impl] = model(input_ids=IDS).logits
            after = model(input_ids=IDS).logits
        assert torch.equal(base, after) and not torch.allclose(base, out[impl], atol=1e-4)
    assert (out["eager"] - out["sdpa"]).abs().max() < 1e-5


def test_gqa_head_ids_index_query_heads():
    """With 4 query heads over 2 KV heads, steering query head 0 leaves query head 1 (same KV head) alone (11)."""
    def attn(steering):
        model = tiny_lm(hidden=64, heads=4, kv_heads=2)
        model.set_attn_implementation("eager")
        install(model, None, steering)
        with torch.no_grad(), highlighting(model, G):
            return model(input_ids=IDS, output_attentions=True).attentions[1]

    base, steered = attn(None), attn(PASTAConfig(alpha=0.01, heads=[[1, 0]]))
    assert torch.equal(base[:, 1:], steered[:, 1:]) and not torch.allclose(base[:, 0], steered[:, 0])


def test_multisection_official_compounds_and_union_does_not():
    """Two sections: the official rule scales a prompt key outside both by alpha^2, inside one by alpha, and
    leaves generated keys at 1, so relative to the highlighted keys generated keys gain alpha^-1; ``union``
    scales only the complement of the union, once (property 7, spec §2.3)."""
    from methods.pasta.config import prompt_bias

    sections = torch.zeros(1, 2, 8, dtype=torch.bool)
    sections[0, 0, 1:3] = True
    sections[0, 1, 5:6] = True
    la = math.log(0.1)
    official = prompt_bias(sections, la, "official")[0] / la
    union = prompt_bias(sections, la, "union")[0] / la
    assert official.tolist() == [2, 1, 1, 2, 2, 1, 2, 2]
    assert union.tolist() == [1, 0, 0, 1, 1, 0, 1, 1]
    empty = torch.zeros(1, 8, dtype=torch.bool)  # a row with nothing highlighted is not steered
    assert prompt_bias(empty, la).abs().sum() == 0
    steering = PASTAConfig(alpha=0.1, heads=[[0, 1]])
    bias = steering.score_bias(0, 4, 10, sections)  # 8 prompt keys + 2 generated
    assert bias[0, 1, 0, 8:].abs().sum() == 0 and torch.allclose(bias[0, 1, 0, :8], official * la)
    assert bias[0, [0, 2, 3]].abs().sum() == 0


def test_steering_over_gear_matches_dense_up_to_gears_own_error():
    """Steered through a compressing GEAR cache (packed + materialised, and simulated storage), the logits
    differ from the dense steered ones by about as much as GEAR's own error unsteered (§6: GEAR + PASTA
    equals PASTA up to GEAR's error), while the steering itself moves them much more."""
    from methods.fp16 import FP16Config
    from methods.gear import GearConfig

    ids = torch.randint(0, 32, (2, 40), generator=torch.Generator().manual_seed(3))
    hl = torch.zeros(2, 30, dtype=torch.bool)  # a 30-token prompt, then 10 decode steps over the compressed cache
    hl[:, 10:16] = True
    steering = PASTAConfig(alpha=0.01, heads=[[0, 0], [0, 1], [1, 2]])

    def logits(cache, steer):
        from runners.generate.decode import Stepper

        model = tiny_lm(hidden=64, heads=4)
        install(model, cache, steer)
        with torch.no_grad(), highlighting(model, hl):
            s = Stepper(model, cache.make_cache(model.config), ids[:, :30], torch.ones(2, 30, dtype=torch.long))
            return torch.stack([s.step(t) for t in ids[:, 30:].T])

    dense, dense_steered = logits(FP16Config(), None), logits(FP16Config(), steering)
    for storage in ("packed", "simulated"):
        gear = GearConfig(bits=4, buffer=8, group=8, rank_prefill=2, rank_decode=1, storage=storage)
        gear_error = (logits(gear, None) - dense).abs().max()
        steered_error = (logits(gear, steering) - dense_steered).abs().max()
        assert 0 < steered_error < 3 * gear_error + 1e-6
        assert (dense_steered - dense).abs().max() > 10 * steered_error


def test_unsteerable_attention_is_refused_with_the_fix():
    model = tiny_lm(hidden=64, heads=4)
    model.config._attn_implementation = "flash_attention_2"  # takes no 4D float mask: a bias would be dropped
    with pytest.raises(ConfigError, match="attn_implementation='sdpa' or 'eager'"):
        install(model, None, PASTAConfig(heads=HEADS))
    with pytest.raises(ConfigError, match="method.heads"):
        PASTAConfig(heads=[[0]])
    with pytest.raises(ConfigError, match="method.alpha"):
        PASTAConfig(alpha=-0.5)
    with pytest.raises(ConfigError, match="heads \\[0, 9\\]"):
        install(tiny_lm(hidden=64, heads=4), None, PASTAConfig(heads=[[1, 0], [1, 9]]))
