"""Typed schema of the `model` group: an HF causal LM built from config, or loaded by id."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from reprolab import checks
from reprolab.registry import schema

ARCHS = ("llama", "gpt2")


@schema("model", "causal_lm")
@dataclass
class CausalLM:
    """A decoder-only LM: HF ``LlamaForCausalLM`` or ``GPT2LMHeadModel``.

    Sizes use LLaMA names; for GPT-2 they map to n_embd / n_layer / n_head (its MLP is 4x wide).
    vocab_size: None takes the data source's vocabulary.
    hf_id: the real checkpoint at paper scale; loaded only when ``pretrained`` is true (it needs the
      hub or a local HF cache). Otherwise the model is built from these sizes with random init.
    tie_embeddings: LLaMA papers (GaLore/COSMOS) untie embedding and head; GPT-2 ties them.
    """

    arch: str = "llama"
    hidden_size: int = 128
    intermediate_size: int = 512
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: Optional[int] = None
    max_position_embeddings: int = 1024
    vocab_size: Optional[int] = None
    rms_norm_eps: float = 1e-6
    tie_embeddings: bool = False
    initializer_range: float = 0.02
    hf_id: Optional[str] = None
    pretrained: bool = False

    def __post_init__(self):
        checks.one_of("model.arch", self.arch, ARCHS)
        for key in ("hidden_size", "intermediate_size", "num_layers", "num_heads", "max_position_embeddings"):
            checks.positive(f"model.{key}", getattr(self, key))
        if self.hidden_size % self.num_heads:
            raise checks.ConfigError(
                f"model.hidden_size={self.hidden_size} is not divisible by model.num_heads={self.num_heads}."
            )
        if self.num_kv_heads is not None and self.num_heads % self.num_kv_heads:
            raise checks.ConfigError(f"model.num_heads={self.num_heads} is not divisible by model.num_kv_heads={self.num_kv_heads}.")
        if self.pretrained and not self.hf_id:
            raise checks.ConfigError("model.pretrained=true needs model.hf_id (the HF checkpoint to load).")

    def build(self, vocab_size: Optional[int] = None):
        from reprolab.models.build import build_causal_lm

        return build_causal_lm(self, vocab_size)
