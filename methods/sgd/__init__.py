"""SGD with (Nesterov) momentum and decay / no-decay parameter groups."""
from methods.sgd.config import SGDConfig

__all__ = ["SGDConfig"]
