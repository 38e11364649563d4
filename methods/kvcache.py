"""Plumbing shared by the KV caches in methods/ (GEAR and its quantization baselines, H2O).

Each is a transformers `Cache` of one `MeasuredLayer` per decoder layer. A layer counts the
tokens it was given (``seen``: positions, whatever it keeps), cannot be cropped (compressed
chunks and evicted tokens cannot give back single tokens), reorders its batch through one
`_map_batch`, and reports its size three ways, summed by `MeasuredCache`:

- ``nbytes()``: the measured size of everything the layer stores;
- ``nominal_bits()``: the method's own accounting (GEAR §2.7, 16 bits per kept value for H2O);
- ``fp16_bytes()``: what an fp16 cache of the same ``seen`` tokens would take.
"""
from __future__ import annotations

from abc import abstractmethod

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class MeasuredLayer(CacheLayerMixin):
    """A cache layer with a token count, batch reordering, size reports and no cropping.

    Subclasses keep ``keys`` / ``values`` shaped [batch, kv_heads, tokens, head_dim] (the
    uncompressed part, possibly empty), implement `update` and `_map_batch`, add what else they
    store to `nbytes` / `nominal_bits`, and say in ``cannot_crop`` why they cannot drop tokens.
    """

    is_sliding = False
    is_croppable = False
    is_compileable = False
    cannot_crop = "this cache cannot drop single tokens"

    def __init__(self):
        super().__init__()
        self.seen = 0  # tokens given to the layer

    def get_seq_length(self) -> int:
        return self.seen

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.keys = self.values = None
        self.is_initialized = False
        self.seen = 0

    def crop(self, tokens_to_remove: int) -> None:
        raise ValueError(f"{self.cannot_crop}: use DynamicCache for assisted / speculative decoding.")

    @abstractmethod
    def _map_batch(self, fn) -> None:
        """Apply ``fn`` (a function of a tensor whose dim 0 is the batch) to every stored tensor."""

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._map_batch(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._map_batch(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self._map_batch(lambda t: t[indices.to(t.device)])

    def nbytes(self) -> int:
        """Measured bytes of everything the layer stores (here: ``keys`` and ``values``)."""
        if not self.is_initialized:
            return 0
        return sum(t.numel() * t.element_size() for t in (self.keys, self.values))

    def nominal_bits(self) -> int:
        """The method's own size accounting (here: 16 bits per uncompressed K / V entry)."""
        return 0 if not self.is_initialized else 16 * (self.keys.numel() + self.values.numel())

    def fp16_bytes(self) -> int:
        """Bytes an fp16 K and V of the ``seen`` tokens would take."""
        if not self.is_initialized:
            return 0
        batch, heads, _, head_dim = self.keys.shape
        return 2 * 2 * self.seen * batch * heads * head_dim


class MeasuredCache(Cache):
    """A `Cache` of `MeasuredLayer` s, with their sizes summed."""

    def nbytes(self) -> int:
        return sum(layer.nbytes() for layer in self.layers)

    def nominal_bytes(self) -> float:
        return sum(layer.nominal_bits() for layer in self.layers) / 8

    def fp16_bytes(self) -> int:
        return sum(layer.fp16_bytes() for layer in self.layers)
