"""The uncompressed KV cache baseline."""
from methods.fp16.config import FP16

__all__ = ["FP16"]
