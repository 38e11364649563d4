"""R3M (arXiv:2406.15568): ``objective=r3m`` (a reward model) and ``objective=r3m_dpo`` (R3M-DPO)."""
from methods.r3m.config import R3MConfig, R3MDPOConfig, profile_loss

__all__ = ["R3MConfig", "R3MDPOConfig", "profile_loss"]
