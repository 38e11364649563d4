"""AdamW (torch's implementation) with decay / no-decay parameter groups."""
from methods.adamw.config import AdamWConfig

__all__ = ["AdamWConfig"]
