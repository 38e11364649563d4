"""COSMOS (arXiv:2502.17410): ``from methods.cosmos import COSMOS``. Plugin schema: config.py."""
from methods.cosmos.optimizer import COSMOS

__all__ = ["COSMOS"]
