"""GaLore (arXiv:2403.03507): ``from methods.galore import GaLoreAdamW``. Plugin schema: config.py."""
from methods.galore.optimizer import GaLoreAdamW

__all__ = ["GaLoreAdamW"]
