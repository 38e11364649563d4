"""CyCLIP, the CLIP loss with cyclic-consistency regularisers: ``objective=cyclip``."""
from methods.cyclip.config import CyCLIPConfig

__all__ = ["CyCLIPConfig"]
