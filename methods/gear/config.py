"""Schemas of GEAR and the shared base of every quantising KV-cache plugin (KIVI, KCVT, ...)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from reprolab import checks
from reprolab.registry import schema
from reprolab.roles import CacheMethod

BITS = (2, 4, 8)
STREAM_MODES = ("paper_chunked", "official_recompress")
STORAGES = ("packed", "simulated")
ATTENTIONS = ("materialize", "fused")
COUNT_MODES = ("paper", "official")
BACKBONES = ("kivi", "kcvt")


@dataclass
class QuantKVConfig(CacheMethod):
    """Shared fields and plumbing of the caches built on `methods.gear.cache.GEARCache`.

    bits: b, the code width (2, 4 or 8; packed storage puts 8/b codes in a byte).
    buffer: n_b, the fp16 streaming buffer / KIVI residual length: full buffers are compressed as
      one chunk (keys quantised per channel need n_b to be a multiple of the group size g).
    stream_mode: ``paper_chunked`` (the paper's chunk-wise scheme) or ``official_recompress`` (the
      official simulated runs: prompt kept fp16, whole cache re-compressed every n_b steps).
    storage: ``packed`` (real low-bit codes; the measured bytes equal the paper's formula) or
      ``simulated`` (fake-quantise, keep the fp16 reconstruction, as the official accuracy runs).
    attention: ``materialize`` (decompress, any attention implementation) or ``fused`` (attend over
      the packed codes with the `reprolab.kernels.gear` decode kernel; packed storage only).
    seed: seeds the power-iteration starts (one generator per cache).
    """

    bits: int = 2
    buffer: int = 64
    stream_mode: str = "paper_chunked"
    storage: str = "packed"
    attention: str = "materialize"
    seed: int = 0

    def __post_init__(self):
        if self.bits not in BITS:
            raise checks.ConfigError(f"method.bits={self.bits!r} is not supported: use one of {list(BITS)} (packed codes are 2, 4 or 8 bits).")
        checks.positive("method.buffer", self.buffer)
        checks.one_of("method.stream_mode", self.stream_mode, STREAM_MODES)
        checks.one_of("method.storage", self.storage, STORAGES)
        checks.one_of("method.attention", self.attention, ATTENTIONS)
        if self.attention == "fused" and self.storage != "packed":
            raise checks.ConfigError("method.attention=fused reads packed codes: set method.storage=packed.")

    # ---- what a subclass says -----------------------------------------------------------------
    def codec(self):
        """The `methods.gear.compress.CodecSpec` of this method."""
        raise TypeError(f"{type(self).__name__} must define codec()")

    def ranks(self) -> tuple[int, int]:
        """(rank of the prefill chunk, rank of decode chunks)."""
        return 0, 0

    def _check_group(self, group: int) -> None:
        """Per-channel key groups run along a chunk's tokens: the chunk length must be a multiple of g."""
        checks.positive("method.group", group)
        if self.buffer % group:
            raise checks.ConfigError(
                f"method.buffer={self.buffer} is not a multiple of method.group={group}: keys are quantised per channel "
                f"in groups of g tokens, so every compressed chunk must hold a multiple of g tokens. "
                f"Set method.buffer={group * max(1, round(self.buffer / group))} (the paper uses n_b = g = 64)."
            )

    def _check_packable(self) -> None:
        """Whole-chunk groups (KCVT): packed codes need a chunk length that fills whole bytes."""
        per = 8 // self.bits
        if self.storage == "packed" and self.buffer % per:
            raise checks.ConfigError(
                f"method.buffer={self.buffer} cannot be packed at {self.bits} bits ({per} codes per byte): "
                f"use a multiple of {per}, or method.storage=simulated."
            )

    # ---- the role -----------------------------------------------------------------------------
    def make_cache(self, model_config):
        from methods.gear.cache import GEARCache, kv_geometry

        layers, kv_heads, head_dim = kv_geometry(model_config)
        self.check_model(kv_heads, head_dim)
        rp, rd = self.ranks()
        return GEARCache(layers, self.codec(), self.buffer, rp, rd, self.stream_mode, self.attention, self.seed)

    def check_model(self, kv_heads: int, head_dim: int) -> None:
        """Model-dependent checks (group vs. head sizes, rank vs. head dim); a ConfigError on failure."""
        codec = self.codec()
        for kind in ("key", "value"):
            spec = codec.quant(kind)
            if spec.layout == "token" and spec.group is not None and (kv_heads * head_dim) % spec.group:
                raise checks.ConfigError(
                    f"method.group={spec.group} does not divide a token's {kv_heads} KV heads x {head_dim} dims = "
                    f"{kv_heads * head_dim} values: pick a group size that divides it."
                )
        for name, r in zip(("rank_prefill", "rank_decode"), self.ranks()):
            limit = min(self.buffer, head_dim)
            if r > limit:
                raise checks.ConfigError(
                    f"method.{name}={r} exceeds min(n, d_H) = min(buffer {self.buffer}, head_dim {head_dim}) = {limit}: "
                    "a rank-r factor of an n x d_H matrix needs r <= min(n, d_H). Lower the rank."
                )
        if self.attention == "fused" and codec.key.layout != "channel":
            raise checks.ConfigError("method.attention=fused needs per-channel keys (the KIVI/KCVT/GEAR layouts).")

    @property
    def attn_implementation(self) -> Optional[str]:
        return "gear_fused" if self.attention == "fused" else None

    def prepare_model(self, model) -> None:
        if self.attention == "fused":
            from methods.gear.attention import register

            register()
        super().prepare_model(model)


@schema("kv_cache", "gear")
@dataclass
class GearConfig(QuantKVConfig):
    """GEAR: Kang et al., "GEAR: An Efficient KV Cache Compression Recipe for Near-Lossless Generative
    Inference of LLM", arXiv:2403.05527. X ≈ D̂ + S + L per chunk (`methods.gear.compress`).

    backbone: ``kivi`` (keys per channel in groups of ``group`` tokens, values per token in groups
      of ``group`` channels; the paper's 2-bit setting) or ``kcvt`` (one group over the whole chunk
      per key channel and over the whole token vector per value; the 4-bit setting).
    outlier_frac: s, the fraction kept exactly (s/2 smallest + s/2 largest per row); 0 gives GEAR-L.
    outlier_count: ``paper`` (⌈s·row/2⌉ per side) or ``official`` (the official code's count, which
      for keys does not scale with the chunk length, ../shared/papers/gear.md §2.3).
    rank_prefill / rank_decode: r of the low-rank residual of the prompt chunk / of decode chunks
      (official scripts: 4 / 2). loops: power-iteration rounds (3).
    Defaults = the official 2-bit GEAR(KIVI) run: b=2, g=64, n_b=64, s=0.02, r=4/2, loops=3.
    """

    backbone: str = "kivi"
    group: int = 64
    outlier_frac: float = 0.02
    outlier_count: str = "paper"
    rank_prefill: int = 4
    rank_decode: int = 2
    loops: int = 3

    def __post_init__(self):
        super().__post_init__()
        checks.one_of("method.backbone", self.backbone, BACKBONES)
        if self.backbone == "kivi":
            self._check_group(self.group)
        else:
            self._check_packable()
        checks.in_range("method.outlier_frac", self.outlier_frac, 0.0, 0.5, hi_open=True)
        checks.one_of("method.outlier_count", self.outlier_count, COUNT_MODES)
        checks.non_negative("method.rank_prefill", self.rank_prefill)
        checks.non_negative("method.rank_decode", self.rank_decode)
        checks.positive("method.loops", self.loops)

    def codec(self):
        from methods.gear.compress import CodecSpec, QuantSpec

        g = self.group if self.backbone == "kivi" else None
        return CodecSpec(QuantSpec(self.bits, "channel", g), QuantSpec(self.bits, "token", g),
                         outlier_frac=self.outlier_frac, outlier_count=self.outlier_count, loops=self.loops,
                         storage=self.storage)

    def ranks(self) -> tuple[int, int]:
        return self.rank_prefill, self.rank_decode


@schema("kv_cache", "gear_l")
@dataclass
class GearLConfig(GearConfig):
    """GEAR-L: GEAR without the sparse outliers (s = 0), quantised backbone + low-rank residual
    (official ``--compress_method GEARL``; 2-bit KIVI backbone by default)."""

    outlier_frac: float = 0.0


@schema("kv_cache", "gear_kcvt")
@dataclass
class GearKCVTConfig(GearConfig):
    """GEAR(KCVT): GEAR on the 4-bit KCVT backbone (official ``--compress_method GEAR-KCVT --quantize_bit 4``)."""

    backbone: str = "kcvt"
    bits: int = 4


@schema("kv_cache", "gear_l_kcvt")
@dataclass
class GearLKCVTConfig(GearKCVTConfig):
    """GEAR-L(KCVT): the 4-bit KCVT backbone + low-rank residual, no outliers (``--compress_method GEARL-KCVT``)."""

    outlier_frac: float = 0.0
