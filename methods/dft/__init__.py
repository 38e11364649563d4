"""DFT and DFT2 (Discriminative Fine-Tuning, arXiv:2502.18679): ``objective=dft`` / ``objective=dft2`` on
``data=dft_toy`` / ``data=dft_uf`` (positives + cached negatives of the base model)."""
from methods.dft.config import DFT2Config, DFTConfig

__all__ = ["DFT2Config", "DFTConfig"]
