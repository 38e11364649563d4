"""RoseLoRA (arXiv:2406.10777) as an `adapter` plugin: ``RoseLoRAAdapterConfig().wrap(model)``."""
from methods.roselora.config import RoseLoRAAdapterConfig

__all__ = ["RoseLoRAAdapterConfig"]
