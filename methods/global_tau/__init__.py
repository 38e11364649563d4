"""One global temperature (fixed or learnable): ``temperature=global_tau``, TempNet's baselines."""
from methods.global_tau.config import GlobalTauConfig
from methods.global_tau.module import GlobalTau

__all__ = ["GlobalTauConfig", "GlobalTau"]
