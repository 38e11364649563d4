"""FT-L / FT-M (full fine-tuning of chosen weight matrices) as an `adapter` plugin."""
from methods.ft_layer.config import FTLayerAdapterConfig

__all__ = ["FTLayerAdapterConfig"]
