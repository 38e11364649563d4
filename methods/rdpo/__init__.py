"""rDPO (arXiv:2403.00409): ``objective=rdpo``, DPO unbiased under random label flips."""
from methods.rdpo.config import RDPOConfig

__all__ = ["RDPOConfig"]
