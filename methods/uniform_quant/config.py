from __future__ import annotations

from dataclasses import dataclass

from methods.gear.config import QuantKVConfig
from reprolab import checks
from reprolab.registry import schema


@schema("kv_cache", "uniform_quant")
@dataclass
class UniformQuantConfig(QuantKVConfig):
    """Uniform (per-tensor) quantisation, the GEAR v1 baseline (arXiv:2403.05527 v1; spec §3.2,
    official ``fake_uniformquantization``): one (m, Δ) per compressed chunk of a sequence, over all
    its heads, tokens and dims (the official code pools the whole batch). Simulated storage only;
    defaults b = 4 and the v1 streaming gap of 20 tokens.
    """

    bits: int = 4
    buffer: int = 20
    storage: str = "simulated"

    def __post_init__(self):
        super().__post_init__()
        if self.storage != "simulated":
            raise checks.ConfigError("method.storage must be simulated for uniform_quant (per-tensor ranges have no packed form here).")

    def codec(self):
        from methods.gear.compress import CodecSpec, QuantSpec

        spec = QuantSpec(self.bits, "tensor", None)
        return CodecSpec(spec, spec, storage="simulated")
