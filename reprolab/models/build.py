from __future__ import annotations

import torch


def hf_config(cfg, vocab_size: int):
    """The transformers config object for ``cfg`` (a `CausalLM`)."""
    from transformers import GPT2Config, LlamaConfig

    if cfg.arch == "llama":
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.num_layers,
            num_attention_heads=cfg.num_heads,
            num_key_value_heads=cfg.num_kv_heads or cfg.num_heads,
            max_position_embeddings=cfg.max_position_embeddings,
            rms_norm_eps=cfg.rms_norm_eps,
            tie_word_embeddings=cfg.tie_embeddings,
            initializer_range=cfg.initializer_range,
            use_cache=False,
        )
    return GPT2Config(
        vocab_size=vocab_size,
        n_embd=cfg.hidden_size,
        n_inner=cfg.intermediate_size,
        n_layer=cfg.num_layers,
        n_head=cfg.num_heads,
        n_positions=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_embeddings,
        initializer_range=cfg.initializer_range,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        use_cache=False,
    )


def build_causal_lm(cfg, vocab_size: int | None = None) -> torch.nn.Module:
    """Build (or, with ``pretrained``, load) the model. ``cfg.vocab_size`` wins over the data's.
    ``cfg.reward_head``: the LM's backbone (HF ``AutoModel``) under a scalar head instead."""
    from transformers import AutoModel, AutoModelForCausalLM, GPT2LMHeadModel, GPT2Model, LlamaForCausalLM, LlamaModel

    if cfg.pretrained:
        from reprolab import hub

        model = hub.from_pretrained(AutoModel if cfg.reward_head else AutoModelForCausalLM, cfg.hf_id, "model",
                                    instead="set model.pretrained=false to build the same architecture with random init.")
        return _reward_model(model) if cfg.reward_head else model
    vocab = cfg.vocab_size or vocab_size
    if not vocab:
        raise ValueError("model.vocab_size is unset and the data source gave none")
    if cfg.arch == "window_mlp":
        from reprolab.models import window_mlp

        return window_mlp.build(cfg, vocab)
    config = hf_config(cfg, vocab)
    if cfg.reward_head:
        return _reward_model((LlamaModel if cfg.arch == "llama" else GPT2Model)(config))
    model_cls = LlamaForCausalLM if cfg.arch == "llama" else GPT2LMHeadModel
    return model_cls(config)


def _reward_model(backbone: torch.nn.Module) -> torch.nn.Module:
    from reprolab.models.reward import LMRewardModel

    return LMRewardModel(backbone)
