"""Muon with an AdamW branch, single device: ``from methods.muon import Muon``. Schema: config.py."""
from methods.muon.optimizer import Muon

__all__ = ["Muon"]
