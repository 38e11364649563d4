"""Outlier-reduced per-tensor KV quantisation (GEAR v1 baseline)."""
from methods.outlier_quant.config import OutlierQuantConfig

__all__ = ["OutlierQuantConfig"]
