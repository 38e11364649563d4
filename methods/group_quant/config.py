from __future__ import annotations

from dataclasses import dataclass

from methods.gear.config import QuantKVConfig
from reprolab import checks
from reprolab.registry import schema

LAYOUTS = ("token", "dim")


@schema("kv_cache", "group_quant")
@dataclass
class GroupQuantConfig(QuantKVConfig):
    """Group-wise quantisation baselines of the GEAR paper (arXiv:2403.05527; spec §3.3, §3.5).

    layout ``token`` (default; the v4 table's "Per-token group Q", official ``groupquantization_token``):
      keys and values both quantised per token, in groups of ``group`` = 128 channels of the
      concatenated H·d_H vector. Packed or simulated.
    layout ``dim`` (the v1 table's "Group Q", official ``fake_groupwise_asymmetric_quantization``):
      one range per head-dim index c over all heads and tokens of a chunk (per sequence here; the
      official code pools the batch too). Simulated storage only.
    """

    bits: int = 4
    buffer: int = 64
    layout: str = "token"
    group: int = 128

    def __post_init__(self):
        super().__post_init__()
        checks.one_of("method.layout", self.layout, LAYOUTS)
        checks.positive("method.group", self.group)
        if self.layout == "dim" and self.storage != "simulated":
            raise checks.ConfigError("method.layout=dim (v1 group quantisation) has no packed form: set method.storage=simulated.")

    def codec(self):
        from methods.gear.compress import CodecSpec, QuantSpec

        g = self.group if self.layout == "token" else None
        spec = QuantSpec(self.bits, self.layout, g)
        return CodecSpec(spec, spec, storage=self.storage)
