"""Every steering plugin: at its identity setting the outputs are unchanged bit for bit, with the
hook installed and tokens highlighted, alone and over a compressing KV cache."""
from __future__ import annotations

import torch

from reprolab.models.attention import highlighting, install
from tests.roles.conftest import every, tiny_lm


@every("steering")
def test_steering_identity_leaves_outputs_unchanged(plugin):
    from methods.gear import GearConfig

    ids = torch.randint(0, 32, (2, 20), generator=torch.Generator().manual_seed(0))
    highlight = torch.zeros(2, 20, dtype=torch.bool)
    highlight[:, 5:9] = True
    identity = type(plugin)(**type(plugin).identity)
    for cache in (None, GearConfig(buffer=8, group=8, rank_prefill=2, rank_decode=1)):
        base, steered = tiny_lm().eval(), tiny_lm().eval()
        install(base, cache)
        install(steered, cache, identity)

        def run(model):
            kw = {} if cache is None else {"cache": cache.make_cache(model.config), "use_cache": True}
            with torch.no_grad(), highlighting(model, highlight):
                return model(input_ids=ids, **kw).logits

        assert torch.equal(run(base), run(steered))
