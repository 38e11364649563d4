"""SimPO + an SFT term on the chosen answer (CPO-style), a DFT baseline: ``objective=simpo_sft``."""
from methods.simpo_sft.config import SimPOSFTConfig

__all__ = ["SimPOSFTConfig"]
