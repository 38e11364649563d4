from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Optional

from reprolab.roles.base import Method

if TYPE_CHECKING:
    from transformers import Cache, PretrainedConfig


class CacheMethod(Method, ABC):
    """Role: the KV cache a decoder generates with (used by the `generate` runner).

    ``make_cache(model_config)`` returns a fresh `transformers.Cache` for one generation (one
    batch of prompts); it validates that it can serve the model (attention type, head sizes) and
    raises a `ValueError` naming the problem otherwise. Pass it to the model as
    ``model(..., cache=cache)`` or ``model.generate(..., cache=cache)``.

    ``attn_implementation`` names the attention function the cache needs registered on the model
    (``model.set_attn_implementation(name)``), or None when it works with any attention (the cache
    hands ordinary key/value tensors back from ``update``). ``prepare_model(model)`` registers and
    sets it; runners call it once after building the model.
    """

    role: ClassVar[str] = "kv_cache"

    @abstractmethod
    def make_cache(self, model_config: "PretrainedConfig") -> "Cache":
        """A new, empty cache for a model with this config."""

    @property
    def attn_implementation(self) -> Optional[str]:
        return None

    def prepare_model(self, model) -> None:
        """Set the attention function this cache needs (no-op when ``attn_implementation`` is None)."""
        if self.attn_implementation is not None:
            model.set_attn_implementation(self.attn_implementation)
