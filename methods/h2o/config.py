from __future__ import annotations

from dataclasses import dataclass

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import CacheMethod


@schema("kv_cache", "h2o")
@dataclass
class H2OConfig(CacheMethod):
    """H2O heavy-hitter token dropping (Zhang et al., arXiv:2306.14048), the GEAR v1 baseline
    (../shared/papers/gear.md §3.8; official config fields ``heavy_size`` / ``recent_size``).

    heavy_ratio / recent_ratio: the kept heavy hitters and recent window, as fractions of the
    prompt length (budget = their sum; KV size ≈ budget / total length). Default 10% + 10%
    (H2O's 20% budget).
    """

    heavy_ratio: float = 0.1
    recent_ratio: float = 0.1

    def __post_init__(self):
        checks.in_range("method.heavy_ratio", self.heavy_ratio, 0.0, 1.0, lo_open=True)
        checks.in_range("method.recent_ratio", self.recent_ratio, 0.0, 1.0, lo_open=True)

    def make_cache(self, model_config):
        from methods.gear.cache import kv_geometry
        from methods.h2o.cache import H2OCache

        layers, _, _ = kv_geometry(model_config)
        return H2OCache(layers, self.heavy_ratio, self.recent_ratio)

    @property
    def attn_implementation(self) -> str:
        return "h2o"

    def prepare_model(self, model) -> None:
        from methods.h2o.attention import register

        register()
        super().prepare_model(model)
