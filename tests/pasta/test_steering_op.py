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
HEADS = {"1": [0, 2]}


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
    for steering, highlight in ((PASTAConfig(alpha=1.0, heads=HEADS), G), (PASTAConfig(heads={}), G),
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
        install(tiny_lm(hidden=64, heads=4), None, PASTAConfig(heads={"5": [0]}))
    from methods.gear import GearConfig

    fused = GearConfig(buffer=16, group=16, attention="fused")
    with pytest.raises(ConfigError, match="kv_cache.attention=materialize"):
        install(tiny_lm(hidden=64, heads=4), fused, PASTAConfig(heads=HEADS))
    assert math.log(0.01) < 0
