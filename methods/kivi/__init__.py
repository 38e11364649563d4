"""KIVI KV-cache quantisation (per-channel keys, per-token values, fp16 residual window)."""
from methods.kivi.config import KIVI

__all__ = ["KIVI"]
