"""Bradley-Terry reward learning: ``objective=bt`` (a reward model on preference pairs)."""
from methods.bt.config import BTConfig, sigmoid_losses

__all__ = ["BTConfig", "sigmoid_losses"]
