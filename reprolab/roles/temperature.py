from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

from reprolab.roles.base import Method

if TYPE_CHECKING:
    import torch


class TemperatureMethod(Method, ABC):
    """Role: the temperature the logits are divided by, ``logits = W h / tau(h)`` (TempNet's
    per-input head, a global learnable tau, a fixed tau).

    ``module()`` returns the ``torch.nn.Module`` that maps the last hidden states ``h``
    (``(..., d)``) to tau (``(..., 1)``, > 0). `reprolab.models.attach_temperature` wraps the model's
    output head with it, so training, evaluation and every decoding path (greedy, sampling, any KV
    cache) see the tempered logits, and its parameters are the model's (the optimizer sees them when
    they train). A tau of one leaves the logits unchanged.
    """

    role: ClassVar[str] = "temperature"
    identity: ClassVar[dict] = {}  # field values at which tau = 1 (the role tests use them)
    # What tau reads: ``hidden`` (the head's input h, size hidden_size), ``logits`` (the head's output,
    # size vocab: TempNet, fed the detached logits) or ``embedding`` (a contrastive dual encoder's
    # normalised embeddings, size embed_dim: the contrastive objective divides each anchor's
    # similarities by its tau; no head is wrapped).
    reads: ClassVar[str] = "hidden"

    def trains_alone(self) -> bool:
        """True: every parameter outside the tau network is frozen (TempNet on a frozen LM)."""
        return False

    def param_group(self) -> "dict | None":
        """Options of the tau network's own optimizer group (``{"lr": ..., "weight_decay": ...}``), whose lr
        the runner's schedule leaves constant (TempNet's separate lr); None: it trains in the model's groups."""
        return None

    @abstractmethod
    def module(self, hidden_size: int) -> "torch.nn.Module":
        """The tau network for inputs of size ``hidden_size`` (the vocabulary when ``reads == "logits"``)."""
