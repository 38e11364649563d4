"""Adam-mini (arXiv:2406.16793): ``from methods.adam_mini import AdamMini``. Plugin schema: config.py."""
from methods.adam_mini.optimizer import AdamMini

__all__ = ["AdamMini"]
