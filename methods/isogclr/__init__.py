"""iSogCLR and TempNet's robust contrastive loss (with ``temperature=tempnet_clip``): ``objective=isogclr``."""
from methods.isogclr.config import ISogCLRConfig

__all__ = ["ISogCLRConfig"]
