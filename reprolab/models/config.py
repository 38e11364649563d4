"""Typed schema of the `model` group: an HF causal LM built from config, or loaded by id."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from reprolab import checks
from reprolab.registry import schema

ARCHS = ("llama", "gpt2", "window_mlp")


@schema("model", "causal_lm")
@dataclass
class CausalLM:
    """A decoder-only LM: HF ``LlamaForCausalLM`` or ``GPT2LMHeadModel``, or (``arch: window_mlp``) an MLP over
    the one-hot tokens of the last ``window`` positions (`reprolab.models.window_mlp`: ``hidden_size`` wide,
    ``num_layers`` hidden layers; the head and attention sizes are not used; built from config only).

    Sizes use LLaMA names; for GPT-2 they map to n_embd / n_layer / n_head (its MLP is 4x wide).
    vocab_size: None takes the data source's vocabulary.
    hf_id: the real checkpoint at paper scale; loaded only when ``pretrained`` is true (it needs the
      hub or a local HF cache). Otherwise the model is built from these sizes with random init.
    tie_embeddings: LLaMA papers (GaLore/COSMOS) untie embedding and head; GPT-2 ties them.
    reward_head: a reward model instead of an LM: the backbone with a scalar head on the last non-pad
      token (`reprolab.models.reward.LMRewardModel`; ``objective.margin=lm_reward``). A causal LM's
      checkpoint (``runner.init_from``, e.g. the SFT model) initialises its backbone.
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
    reward_head: bool = False
    window: int = 8

    def __post_init__(self):
        checks.one_of("model.arch", self.arch, ARCHS)
        checks.positive("model.window", self.window)
        if self.arch == "window_mlp" and (self.pretrained or self.reward_head):
            raise checks.ConfigError("model.arch=window_mlp is built from config only, as a causal LM: set "
                                     "model.pretrained=false and model.reward_head=false, or pick arch llama / gpt2.")
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


@schema("model", "mlp_reward")
@dataclass
class MLPReward:
    """A reward model: an MLP over item features (`reprolab.models.reward`), a segment's reward the
    sum over its steps. Defaults: the R3M CPU analog's dim -> 64 -> 64 -> 1, ReLU
    (../shared/papers/r3m.md §5.1; the papers' robotics reward model is 2 x 64 ReLU too).

    input_dim: features per step (must equal the data's ``data.dim``).
    """

    input_dim: int = 10
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    activation: str = "relu"

    def __post_init__(self):
        checks.positive("model.input_dim", self.input_dim)
        for h in self.hidden_sizes:
            checks.positive("model.hidden_sizes", h)
        checks.one_of("model.activation", self.activation, ("relu", "tanh"))

    def build(self, vocab_size: Optional[int] = None):
        """The vocabulary (the lm runner passes the data's) plays no part in a reward model over features."""
        from reprolab.models.reward import MLPRewardModel

        return MLPRewardModel(self.input_dim, list(self.hidden_sizes), self.activation)


@schema("model", "clip_mlp")
@dataclass
class ClipMLP:
    """A contrastive dual encoder of two MLPs over feature vectors (`reprolab.models.dual_encoder`), for
    data of kind ``contrastive`` (data=gmm_pairs: TempNet's CPU analog, ../shared/papers/tempnet.md §5).

    image_dim / text_dim: the input features (must equal data.image_dim / data.text_dim);
    hidden_sizes: the hidden ReLU layers of each tower; embed_dim: the shared normalised embedding.
    """

    image_dim: int = 32
    text_dim: int = 32
    hidden_sizes: list[int] = field(default_factory=lambda: [128])
    embed_dim: int = 32

    def __post_init__(self):
        for key in ("image_dim", "text_dim", "embed_dim"):
            checks.positive(f"model.{key}", getattr(self, key))
        for h in self.hidden_sizes:
            checks.positive("model.hidden_sizes", h)

    def build(self, vocab_size: Optional[int] = None):
        from reprolab.models.dual_encoder import mlp_dual_encoder

        return mlp_dual_encoder(self)


@schema("model", "clip_rn50_distilbert")
@dataclass
class ClipRN50DistilBert:
    """TempNet's CLIP (../shared/papers/tempnet.md §2.5, `Bimodal_CL/clip.py`): a ResNet-50 image tower and a
    DistilBERT text tower (transformers ``ResNetModel`` / ``DistilBertModel``), each projected to embed_dim 256.
    pretrained: load ``image_hf_id`` / ``text_hf_id`` (the hub or a local HF cache; the official code takes
    timm's ImageNet ResNet-50); false: random init at the sizes below (image_width, image_depths,
    text_width, text_layers, text_heads, text_vocab; the defaults are ResNet-50's and DistilBERT's).
    """

    embed_dim: int = 256
    pretrained: bool = True
    image_hf_id: str = "microsoft/resnet-50"
    text_hf_id: str = "distilbert-base-uncased"
    image_width: int = 2048
    image_depths: list[int] = field(default_factory=lambda: [3, 4, 6, 3])
    text_width: int = 768
    text_layers: int = 6
    text_heads: int = 12
    text_vocab: int = 30522

    def __post_init__(self):
        for key in ("embed_dim", "image_width", "text_width", "text_layers", "text_heads", "text_vocab"):
            checks.positive(f"model.{key}", getattr(self, key))
        if self.text_width % self.text_heads:
            raise checks.ConfigError(f"model.text_width={self.text_width} is not divisible by model.text_heads={self.text_heads}.")

    def build(self, vocab_size: Optional[int] = None):
        from reprolab.models.dual_encoder import rn50_distilbert

        return rn50_distilbert(self)
