"""Every KV-cache plugin with its default settings: a model prefills and decodes through it, the cache
holds every token fed, and it reports its three sizes (measured, the paper's formula, fp16)."""
from __future__ import annotations

import math

import torch

from tests.roles.conftest import every, tiny_lm


@every("kv_cache")
def test_cache_round_trips_tokens_and_reports_sizes(plugin):
    from runners.generate.decode import kv_stats

    # 4 KV heads of 64 dims: the plugins' default groups (64) and ranks fit; 96 prompt tokens fill a 64 buffer
    model = tiny_lm(hidden=256, heads=4).eval()
    plugin.prepare_model(model)
    ids = torch.randint(0, 32, (2, 96), generator=torch.Generator().manual_seed(0))
    cache = plugin.make_cache(model.config)
    with torch.no_grad():
        out = model(input_ids=ids, cache=cache, use_cache=True)
        for _ in range(40):
            out = model(input_ids=out.logits[:, -1:].argmax(-1), cache=cache, use_cache=True)
    assert torch.isfinite(out.logits).all()
    assert cache.get_seq_length() == 136
    measured, nominal, fp16 = kv_stats(cache)
    assert measured > 0 and fp16 > 0 and math.isfinite(nominal)
    assert nominal <= fp16 * (1 + 1e-9)  # never more than the uncompressed cache, by the paper's formula
