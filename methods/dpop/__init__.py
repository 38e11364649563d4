"""DPO-Positive / DPOP (arXiv:2402.13228), the DFT tables' DPO-p: ``objective=dpop``."""
from methods.dpop.config import DPOPConfig

__all__ = ["DPOPConfig"]
