"""KTO (arXiv:2402.01306) on the pairs' answers as desirable/undesirable examples: ``objective=kto``."""
from methods.kto.config import KTOConfig

__all__ = ["KTOConfig"]
