"""KIVI KV-cache quantisation (per-channel keys, per-token values, fp16 residual window)."""
from methods.kivi.config import KIVIConfig

__all__ = ["KIVIConfig"]
