"""Per-tensor uniform KV quantisation (GEAR v1 baseline)."""
from methods.uniform_quant.config import UniformQuantConfig

__all__ = ["UniformQuantConfig"]
