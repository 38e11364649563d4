from __future__ import annotations

from dataclasses import dataclass

from methods.gear.config import QuantKVConfig
from reprolab.registry import schema


@schema("kv_cache", "kivi")
@dataclass
class KIVIConfig(QuantKVConfig):
    """KIVI: Liu et al., "KIVI: A Tuning-Free Asymmetric 2bit Quantization for KV Cache",
    arXiv:2402.02750, as the GEAR paper runs it (../shared/papers/gear.md §3.7).

    Keys per channel in groups of ``group`` tokens, values per token in groups of ``group``
    channels, asymmetric b-bit; the most recent tokens stay fp16 in a residual window of
    ``buffer`` (= R) tokens that is quantised as one block when full. Equals GEAR with s = 0, r = 0.
    Deviation from KIVI's own code: values leave the window as a block of R tokens (as in the GEAR
    repository's KIVI runs), not one token at a time; per-token quantisation makes that the same
    codes, only kept fp16 a little longer.
    Defaults: b = 2, g = 64, R = 64 (the GEAR paper's 2-bit comparison).
    """

    group: int = 64

    def __post_init__(self):
        super().__post_init__()
        self._check_group(self.group)

    def codec(self):
        from methods.gear.compress import CodecSpec, QuantSpec

        return CodecSpec(QuantSpec(self.bits, "channel", self.group), QuantSpec(self.bits, "token", self.group),
                         storage=self.storage)
