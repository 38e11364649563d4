"""The uncompressed KV cache baseline."""
from methods.fp16.config import FP16Config

__all__ = ["FP16Config"]
