"""IPO (arXiv:2310.12036): ``objective=ipo``, squared loss on the DPO margin."""
from methods.ipo.config import IPOConfig

__all__ = ["IPOConfig"]
