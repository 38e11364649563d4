"""SogCLR, the global contrastive loss with a moving-average estimator: ``objective=sogclr``."""
from methods.sogclr.config import SogCLRConfig

__all__ = ["SogCLRConfig"]
