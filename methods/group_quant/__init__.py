"""Group-wise KV quantisation baselines (per-token groups; v1 per-head-dim ranges)."""
from methods.group_quant.config import GroupQuantConfig

__all__ = ["GroupQuantConfig"]
