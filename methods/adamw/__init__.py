"""AdamW (torch's implementation) with decay / no-decay parameter groups."""
from methods.adamw.config import AdamW

__all__ = ["AdamW"]
