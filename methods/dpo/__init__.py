"""DPO (arXiv:2305.18290): ``objective=dpo`` (or ``method=dpo``), a pairwise objective against a frozen reference."""
from methods.dpo.config import DPOConfig

__all__ = ["DPOConfig"]
