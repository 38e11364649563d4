"""`GEARCache`: a transformers `Cache` that stores KV compressed, chunk by chunk, for any decoder.

Streaming (GEAR §2.5, spec ../shared/papers/gear.md): new tokens enter an fp16 buffer of ``buffer``
(= n_b) tokens; full buffers are compressed as chunks and appended to the compressed store.
Attention at every step sees [decompressed store ‖ buffer ‖ current token] (``attention=
"materialize"``, works with any attention implementation), or, with ``attention="fused"``, the
store stays packed and the ``gear_fused`` attention function (`methods.gear.attention`) attends
over it directly. Prefill attention is plain attention over the fp16 prompt in both cases.

``stream_mode``:
- ``paper_chunked`` (default, the paper's scheme): the first ⌊n/n_b⌋·n_b prompt tokens are one chunk
  compressed with ``rank_prefill``; during decoding every n_b tokens form a chunk compressed
  with ``rank_decode``; the n mod n_b prompt tail waits in the buffer.
- ``official_recompress`` (the official simulated runs, §2.5 item 1): the prompt stays fp16; at each
  decode step whose cached length L_past is a multiple of n_b, the whole cache is decompressed
  and re-compressed as one chunk with ``rank_decode``.

The prompt chunk is compressed right after the prefill call has handed the fp16 prompt to attention
(so no layer keeps its fp16 prompt around). A decode chunk is compressed at the start of the update
after the one that filled it, i.e. the step whose attention first needs it compressed, so the
materialised and fused attention paths see the same tensors at every step.
K and V are compressed as the model hands them to the cache: keys after RoPE, KV heads before
GQA's repeat. The buffer keeps the model's dtype; the compressed store is fp16-based.

``codec=None`` turns compression off (everything stays in the buffer): then the cache returns
exactly what `transformers.DynamicCache` returns.
"""
from __future__ import annotations

from typing import Optional

import torch

from methods.gear.compress import CodecSpec, compress
from methods.gear.config import ATTENTIONS, STREAM_MODES
from methods.gear.store import DenseStore, PackedStore
from methods.kvcache import MeasuredCache, MeasuredLayer
from reprolab.checks import ConfigError, UserError

# transformers versions whose Cache API (layers, ``update(..., kwargs=...)``, ``get_mask_sizes``)
# this module is written against and tested with. Keep in step with pyproject.toml.
TRANSFORMERS_RANGE = ("5.24", "6")
# Layers whose attention reads every cached token through a mask. Sliding-window / chunked layers are
# served as full layers: the mask still hides what the window excludes (exact, without the window's
# memory saving; Mistral-7B's 4096-token window never binds at the paper's lengths).
SERVED_LAYER_TYPES = {"full_attention", "sliding_attention", "chunked_attention"}


class UnsupportedTransformersError(UserError, RuntimeError):
    """The installed transformers is outside the range whose Cache API these caches hook."""


def transformers_version() -> str:
    import transformers

    return transformers.__version__


def check_transformers() -> None:
    from packaging.version import Version

    version = transformers_version()
    lo, hi = TRANSFORMERS_RANGE
    if not (Version(lo) <= Version(version) < Version(hi)):
        raise UnsupportedTransformersError(
            f"transformers {version} is not supported by the KV caches in methods/: they hook the "
            f"Cache API of transformers>={lo},<{hi}. Install a version in that range (pip install 'transformers>={lo},<{hi}')."
        )


def kv_geometry(config) -> tuple[int, int, int]:
    """(num_layers, kv_heads, head_dim) of a decoder config; a ValueError if a cache cannot serve it."""
    check_transformers()
    if getattr(config, "is_encoder_decoder", False):
        raise ConfigError(f"{config.model_type} is an encoder-decoder model: these KV caches serve decoder-only models.")
    text = config.get_text_config(decoder=True)
    kinds = set(getattr(text, "layer_types", None) or ["full_attention"])
    if not kinds <= SERVED_LAYER_TYPES:
        raise ConfigError(
            f"{text.model_type} has layers of types {sorted(kinds - SERVED_LAYER_TYPES)}: these KV caches serve softmax "
            f"attention layers ({sorted(SERVED_LAYER_TYPES)}) only, not linear-attention / recurrent state. "
            "Use DynamicCache for this model."
        )
    if any(getattr(text, a, None) is not None for a in ("kv_lora_rank", "v_head_dim")):
        raise ConfigError(f"{text.model_type} uses latent / asymmetric KV heads (MLA): these caches need K and V of one head size.")
    heads = getattr(text, "num_attention_heads", None)
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return text.num_hidden_layers, kv_heads, head_dim


class CompressedLayer(MeasuredLayer):
    """One layer: fp16 buffer + compressed stores for K and V (see the module docstring)."""

    cannot_crop = "a compressed cache cannot be cropped (compressed chunks cannot drop single tokens)"

    def __init__(self, codec: Optional[CodecSpec], buffer: int, rank_prefill: int = 0, rank_decode: int = 0,
                 stream_mode: str = "paper_chunked", attention: str = "materialize",
                 generator: Optional[torch.Generator] = None):
        super().__init__()
        if stream_mode not in STREAM_MODES:
            raise ValueError(f"stream_mode={stream_mode!r} is not one of {list(STREAM_MODES)}.")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention={attention!r} is not one of {list(ATTENTIONS)}.")
        if attention == "fused" and (codec is None or codec.storage != "packed"):
            raise ValueError("attention=fused reads the packed codes: it needs storage=packed (not simulated or no codec).")
        self.codec, self.buffer = codec, buffer
        self.rank_prefill, self.rank_decode = rank_prefill, rank_decode
        self.stream_mode, self.attention = stream_mode, attention
        self.generator = generator
        self.consumed = True  # fused attention read the store since the last update

    # ---- state ------------------------------------------------------------------------------
    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device, self.dtype = key_states.device, key_states.dtype
        B, H, _, d = key_states.shape
        self.heads, self.head_dim = H, d
        self.keys = key_states.new_zeros(B, H, 0, d)
        self.values = value_states.new_zeros(B, H, 0, d)
        self.store_k, self.store_v = self._new_store("key"), self._new_store("value")
        # materialize: the working copy [decompressed store ‖ buffer] in the model's dtype, grown by one
        # concatenation per step like DynamicCache's tensors; a chunk's slot is overwritten by its
        # reconstruction when it is compressed. Not part of what the cache stores (see nbytes()).
        self.work_k = self.work_v = None
        self.is_initialized = True

    def _new_store(self, kind):
        if self.codec is None:
            return None
        if self.codec.storage == "simulated":
            return DenseStore()
        return PackedStore(self.codec.quant(kind), self.heads, self.head_dim)

    @property
    def compressed_tokens(self) -> int:
        return 0 if not self.is_initialized or self.store_k is None else self.store_k.n_tokens

    @property
    def buffer_tokens(self) -> int:
        return 0 if not self.is_initialized else self.keys.shape[-2]

    def nbytes(self) -> int:
        """Bytes of everything this layer stores (compressed stores + buffer), measured."""
        stores = (self.store_k, self.store_v) if self.is_initialized else ()
        return super().nbytes() + sum(s.nbytes() for s in stores if s is not None)

    def nominal_bits(self) -> int:
        """The §2.7 formula: compressed chunks' bits + 16 bits per buffered entry."""
        stores = (self.store_k, self.store_v) if self.is_initialized else ()
        return super().nominal_bits() + sum(s.nominal_bits for s in stores if s is not None)

    # ---- compression ------------------------------------------------------------------------
    def _p0(self, rank: int) -> Optional[torch.Tensor]:
        if rank == 0:
            return None
        return torch.rand(self.head_dim, rank, generator=self.generator).to(self.device)

    def _compress(self, k: torch.Tensor, v: torch.Tensor, rank: int) -> None:
        start = self.store_k.n_tokens  # compressed tokens are always a prefix of the sequence
        ck = compress(k, "key", self.codec, rank, self._p0(rank))
        cv = compress(v, "value", self.codec, rank, self._p0(rank))
        self.store_k.append(ck)
        self.store_v.append(cv)
        if self.work_k is not None:
            self.work_k[..., start : start + ck.n, :] = ck.materialize().to(self.work_k.dtype)
            self.work_v[..., start : start + cv.n, :] = cv.materialize().to(self.work_v.dtype)

    def _compress_prompt(self) -> None:
        """paper_chunked prefill: the first ⌊n/n_b⌋·n_b prompt tokens become one chunk (rank_prefill)."""
        m = (self.keys.shape[-2] // self.buffer) * self.buffer
        if m:
            self._compress(self.keys[..., :m, :], self.values[..., :m, :], self.rank_prefill)
            self._drop_front(m)

    def flush(self) -> None:
        """Compress every full decode chunk waiting in the buffer (paper_chunked)."""
        if self.codec is None or self.stream_mode != "paper_chunked" or not self.is_initialized:
            return
        n_b = self.buffer
        while self.keys.shape[-2] >= n_b:
            self._compress(self.keys[..., :n_b, :], self.values[..., :n_b, :], self.rank_decode)
            self._drop_front(n_b)

    def _drop_front(self, n: int) -> None:
        """Remove the first n buffered tokens (copied, so the compressed tokens' fp16 memory is freed)."""
        self.keys, self.values = self.keys[..., n:, :].clone(), self.values[..., n:, :].clone()

    def _recompress_all(self) -> None:
        """official_recompress: decompress everything and compress it again as one chunk."""
        if self.work_k is not None:
            k, v = self.work_k, self.work_v
        else:
            k = torch.cat([self.store_k.materialize().to(self.keys.dtype), self.keys], 2)
            v = torch.cat([self.store_v.materialize().to(self.values.dtype), self.values], 2)
        self.store_k, self.store_v = self._new_store("key"), self._new_store("value")
        self.keys, self.values = k[..., :0, :], v[..., :0, :]
        self._compress(k, v, self.rank_decode)

    # ---- the Cache API ----------------------------------------------------------------------
    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Append the new tokens; return the K/V the model's attention should use.

        ``kwargs["kwargs"]`` is the attention call's keyword dict (the models pass it through);
        with ``attention="fused"`` the layer puts itself there as ``gear_layer``.
        """
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        if self.attention == "fused" and not self.consumed:
            raise RuntimeError(
                "GEARCache(attention='fused') returned only its fp16 buffer, but the model's attention did not read the "
                "compressed store: call method.prepare_model(model) (it sets attn_implementation='gear_fused')."
            )
        first = self.seen == 0
        if self.codec is not None and not first:
            if self.stream_mode == "paper_chunked":
                self.flush()
            elif self.seen % self.buffer == 0:
                self._recompress_all()
        self.keys = torch.cat([self.keys, key_states], -2)
        self.values = torch.cat([self.values, value_states], -2)
        self.seen += key_states.shape[-2]
        if self.codec is None:
            return self.keys, self.values
        if first:  # prefill: plain attention over the prompt as given, then compress its full chunks
            if self.attention == "materialize":
                self.work_k, self.work_v = key_states.clone(), value_states.clone()
            if self.stream_mode == "paper_chunked":
                self._compress_prompt()
            return key_states, value_states
        if self.attention == "materialize":
            self.work_k = torch.cat([self.work_k, key_states], -2)
            self.work_v = torch.cat([self.work_v, value_states], -2)
            return self.work_k, self.work_v
        if self.compressed_tokens:  # fused: attention reads the packed store itself
            attn_kwargs = kwargs.get("kwargs")
            if attn_kwargs is None:
                raise RuntimeError("attention='fused' needs a model that passes its attention kwargs to cache.update (LLaMA/GPT-2 style).")
            attn_kwargs["gear_layer"] = self
            self.consumed = False
        return self.keys, self.values

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.seen + query_length, 0

    def reset(self) -> None:
        super().reset()
        self.consumed = True

    def _map_batch(self, fn) -> None:
        if not self.is_initialized:
            return
        self.keys, self.values = fn(self.keys), fn(self.values)
        for s in (self.store_k, self.store_v):
            if s is not None:
                s.map_batch(fn)
        self.work_k = None if self.work_k is None else fn(self.work_k)
        self.work_v = None if self.work_v is None else fn(self.work_v)


class GEARCache(MeasuredCache):
    """A `CompressedLayer` per decoder layer.

    ``nbytes()`` is the measured size of everything stored; ``nominal_bytes()`` the §2.7 formula;
    ``fp16_bytes()`` what an fp16 cache of the same tokens would take. In ``storage="packed"`` the
    first two are equal (a test checks it).
    """

    def __init__(self, num_layers: int, codec: Optional[CodecSpec], buffer: int = 64, rank_prefill: int = 0,
                 rank_decode: int = 0, stream_mode: str = "paper_chunked", attention: str = "materialize", seed: int = 0):
        self.generator = torch.Generator().manual_seed(seed)
        layers = [CompressedLayer(codec, buffer, rank_prefill, rank_decode, stream_mode, attention, self.generator)
                  for _ in range(num_layers)]
        super().__init__(layers=layers)

    def flush(self) -> None:
        for layer in self.layers:
            layer.flush()
