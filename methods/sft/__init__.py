"""SFT on the positives of DFT's data: ``objective=sft`` (the token-mean CE of the official DFT code's sft flag)."""
from methods.sft.config import SFTConfig

__all__ = ["SFTConfig"]
