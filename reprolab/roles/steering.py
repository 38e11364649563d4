from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Optional

from reprolab.roles.base import Method

if TYPE_CHECKING:
    import torch


class SteeringMethod(Method, ABC):
    """Role: attention steering (PASTA and its relatives), an edit of the attention scores.

    ``score_bias(layer, num_heads, key_len, highlight)`` returns an additive bias on one layer's
    pre-softmax scores, broadcastable to ``(batch, heads, queries, keys)``, or None to leave the
    layer alone. ``highlight`` is a ``(batch, key_len)`` bool mask of the emphasised tokens (the
    task or an earlier stage supplies it). Adding ``log alpha`` to the scores of the keys outside
    the highlight is exactly PASTA's "scale their attention by alpha and renormalise".
    `reprolab.models.attention.install` adds the bias inside the model's one attention hook, so it
    composes with any KV cache; a bias of zero (alpha = 1) leaves every output unchanged.
    """

    role: ClassVar[str] = "steering"
    identity: ClassVar[dict] = {}  # field values at which this steering changes nothing (the role tests use them)

    @abstractmethod
    def score_bias(self, layer: int, num_heads: int, key_len: int,
                   highlight: "torch.Tensor") -> Optional["torch.Tensor"]:
        """The additive score bias of layer ``layer`` (None: no edit)."""

    def check_model(self, model_config) -> None:
        """Raise a ConfigError naming the key when the model cannot take this steering (e.g. a head
        index beyond the model's heads)."""

    def setup(self, model, task, tokenizer, decoder) -> None:
        """Once before a run decodes: load (or profile on the task's held-out examples, through
        ``decoder``) what the steering needs, e.g. its heads. Default: nothing."""

    def prepare(self, model, task, tokenizer, batch: list, decoder) -> tuple[list, dict]:
        """The batch's examples as they are decoded and per-batch statistics. An example's
        ``meta["highlight"]`` (token spans of its prompt, or None: unsteered) is what gets steered.
        Default: the task's own highlights (e.g. the gold sentences), no statistics. A steering that
        finds the highlights itself (AutoPASTA) returns examples with its own."""
        return batch, {}
