from __future__ import annotations

from dataclasses import dataclass

from methods.gear.config import QuantKVConfig
from reprolab.registry import schema


@schema("kv_cache", "kcvt")
@dataclass
class KCVTConfig(QuantKVConfig):
    """KCVT ("Key per-Channel, Value per-Token"), the GEAR paper's 4-bit backbone
    (arXiv:2403.05527; ../shared/papers/gear.md §3.6).

    KIVI's axes with one group spanning the whole axis: one (m, Δ) per key channel over the whole
    compressed chunk, one per value token over its whole H·d_H vector. Defaults: b = 4 and a
    streaming gap of 20 tokens, as the official scripts (``--compress_method KCVT --streaming_gap 20``).
    """

    bits: int = 4
    buffer: int = 20

    def __post_init__(self):
        super().__post_init__()
        self._check_packable()

    def codec(self):
        from methods.gear.compress import CodecSpec, QuantSpec

        return CodecSpec(QuantSpec(self.bits, "channel", None), QuantSpec(self.bits, "token", None), storage=self.storage)
