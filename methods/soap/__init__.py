"""SOAP (arXiv:2409.11321): ``from methods.soap import SOAP``. Plugin schema: config.py."""
from methods.soap.optimizer import SOAP

__all__ = ["SOAP"]
