"""Registry-driven role tests: each module is parametrized over every registered plugin of its role,
so a new plugin is tested by being registered. The paper properties stay in the per-paper folders."""
from __future__ import annotations

import pytest

from reprolab.registry import plugins


def every(role: str):
    """``pytest.mark.parametrize`` over the registered plugins of ``role`` (name -> default instance)."""
    names = sorted(plugins(role))
    return pytest.mark.parametrize("plugin", [plugins(role)[n]() for n in names], ids=names)


def tiny_lm(hidden=64, heads=4, kv_heads=None, layers=2, vocab=32, seed=0):
    import torch

    from reprolab.models.config import CausalLM

    torch.manual_seed(seed)
    return CausalLM(hidden_size=hidden, intermediate_size=2 * hidden, num_layers=layers, num_heads=heads,
                    num_kv_heads=kv_heads).build(vocab)
