"""PASTA attention steering (arXiv:2311.02262): ``steering=pasta``; see `reprolab.models.attention`."""
from methods.pasta.config import PASTAConfig

__all__ = ["PASTAConfig"]
