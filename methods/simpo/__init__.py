"""SimPO (arXiv:2405.14734), reference-free length-normalised pairwise loss: ``objective=simpo``."""
from methods.simpo.config import SimPOConfig

__all__ = ["SimPOConfig"]
