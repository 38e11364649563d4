"""KCVT KV-cache quantisation (per-channel keys / per-token values, whole-axis groups)."""
from methods.kcvt.config import KCVTConfig

__all__ = ["KCVTConfig"]
