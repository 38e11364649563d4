"""Build or load the model the `generate` runner evaluates, and its tokenizer."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from reprolab.checks import ConfigError, DataFileNotFoundError

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def checkpoint_file(path: str) -> Path:
    """A ``.ckpt`` file, or a run folder of the `lm` runner (its ``checkpoints/last.ckpt``)."""
    p = Path(path)
    if p.is_dir():
        p = p / "checkpoints" / "last.ckpt"
    if not p.is_file():
        raise DataFileNotFoundError(
            f"runner.checkpoint={path!r}: no checkpoint at {p}. Give a run folder written by the lm runner "
            "(it holds checkpoints/last.ckpt) or the path of a .ckpt file."
        )
    return p


def load_state(path: str) -> dict:
    """The model's state dict from an `lm` runner checkpoint (Lightning's ``model.`` prefix removed)."""
    ckpt = torch.load(checkpoint_file(path), map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict", ckpt)
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")} or state


def _vocab_of(state: dict) -> int:
    for key, t in state.items():
        if key.endswith(("embed_tokens.weight", "wte.weight")):
            return t.shape[0]
    raise ValueError("the checkpoint has no token embedding (embed_tokens / wte): is it an lm runner checkpoint?")


def build_model(model_cfg, checkpoint, vocab_size, dtype: str, device: str):
    """The model in eval mode on ``device``: from ``checkpoint`` (weights trained by the lm runner),
    else pretrained (``model.pretrained``), else built from config with random init."""
    if checkpoint:
        state = load_state(checkpoint)
        model = model_cfg.build(_vocab_of(state))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ConfigError(
                f"runner.checkpoint={checkpoint!r} does not fit model={model_cfg.arch} (hidden {model_cfg.hidden_size}, "
                f"{model_cfg.num_layers} layers): missing {missing[:4]}, unexpected {unexpected[:4]}. "
                "Use the model config the checkpoint was trained with."
            )
        log.info(f"loaded {checkpoint_file(checkpoint)}")
    else:
        model = model_cfg.build(vocab_size)
    return model.to(device=device, dtype=DTYPES[dtype]).eval()


def build_tokenizer(name: str):
    from reprolab.data.tokenizers import build_tokenizer as build

    if name == "char":
        raise ConfigError("runner.tokenizer=char needs the training corpus; use byte or an HF tokenizer id.")
    return build(name)
