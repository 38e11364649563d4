"""Adaptive preference scaling (arXiv:2406.02764): ``objective=adaptive_pref`` (reward model) and ``objective=ada_dpo``."""
from methods.adaptive_pref.config import AdaDPOConfig, AdaptivePrefConfig
from methods.adaptive_pref.tau import closed_form_tau, newton_tau, u_of_rho

__all__ = ["AdaDPOConfig", "AdaptivePrefConfig", "closed_form_tau", "newton_tau", "u_of_rho"]
