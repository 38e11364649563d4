"""SLiC-HF (arXiv:2305.10425): ``objective=slic``, hinge on the DPO margin."""
from methods.slic.config import SLiCConfig

__all__ = ["SLiCConfig"]
