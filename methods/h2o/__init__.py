"""H2O heavy-hitter KV token dropping (GEAR v1 baseline)."""
from methods.h2o.config import H2OConfig

__all__ = ["H2OConfig"]
