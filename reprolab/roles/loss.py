from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from reprolab.roles.base import Method

if TYPE_CHECKING:
    import torch


class LossMethod(Method, ABC):
    """Role: training loss for the `lm` runner.

    ``loss(model, batch)`` returns a dict with a scalar ``"loss"`` to backpropagate and any other
    scalars to log under ``train/``. ``batch`` is the runner's dict (``input_ids``, ``labels``
    with -100 for ignored positions, optional ``attention_mask``).
    """

    @abstractmethod
    def loss(self, model: torch.nn.Module, batch: dict) -> dict[str, torch.Tensor]:
        """Return ``{"loss": scalar, ...}`` for one batch."""
