"""ORPO (arXiv:2403.07691): NLL + odds-ratio loss, no reference: ``objective=orpo``."""
from methods.orpo.config import ORPOConfig

__all__ = ["ORPOConfig"]
