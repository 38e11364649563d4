"""H2O heavy-hitter KV token dropping (GEAR v1 baseline)."""
from methods.h2o.config import H2O

__all__ = ["H2O"]
