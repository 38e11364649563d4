from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from reprolab.roles.base import Method

if TYPE_CHECKING:
    import torch


class OptimizerMethod(Method, ABC):
    """Role: optimizer. Builds a `torch.optim.Optimizer` for a whole model.

    The method decides its own parameter groups (decay / no-decay, which tensors take a matrix
    branch and which an AdamW branch), because that routing is part of each paper's algorithm.
    Learning-rate schedules are the runner's job: they scale every group's initial ``lr`` by one
    factor, so group-specific learning rates keep their ratios.
    """

    role: ClassVar[str] = "optimizer"

    @abstractmethod
    def build_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """Return the optimizer for every trainable parameter of ``model``."""
