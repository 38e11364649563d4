from __future__ import annotations

from dataclasses import dataclass

from reprolab.registry import schema
from reprolab.roles import CacheMethod


@schema("kv_cache", "fp16")
@dataclass
class FP16Config(CacheMethod):
    """No compression: transformers' `DynamicCache` (the "FP16" row of the GEAR tables; the cache
    keeps the model's dtype, fp16 at paper scale)."""

    def make_cache(self, model_config):
        from transformers import DynamicCache

        return DynamicCache(config=model_config)
