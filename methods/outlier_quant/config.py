from __future__ import annotations

from dataclasses import dataclass

from methods.gear.config import QuantKVConfig
from reprolab import checks
from reprolab.registry import schema


@schema("kv_cache", "outlier_quant")
@dataclass
class OutlierQuantConfig(QuantKVConfig):
    """Outlier-reduced quantisation, the GEAR v1 baseline (arXiv:2403.05527 v1; spec §2.3, §3.4,
    official ``fake_dense_sparse_uniformquantization``): per compressed chunk of a sequence, the
    ⌈s·N/2⌉ smallest and largest of its N entries are kept exactly and the rest is quantised
    uniformly with one (m, Δ) taken over the remaining range. Simulated storage only; defaults
    b = 4, s = 0.02, streaming gap 20.
    """

    bits: int = 4
    buffer: int = 20
    storage: str = "simulated"
    outlier_frac: float = 0.02

    def __post_init__(self):
        super().__post_init__()
        checks.in_range("method.outlier_frac", self.outlier_frac, 0.0, 0.5, hi_open=True)
        if self.storage != "simulated":
            raise checks.ConfigError("method.storage must be simulated for outlier_quant (per-tensor ranges have no packed form here).")

    def codec(self):
        from methods.gear.compress import CodecSpec, QuantSpec

        spec = QuantSpec(self.bits, "tensor", None)
        return CodecSpec(spec, spec, outlier_frac=self.outlier_frac, outlier_fill="inside", storage="simulated")
