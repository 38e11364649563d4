"""Build or load the model the `generate` runner evaluates, and its tokenizer."""
from __future__ import annotations

import logging
from pathlib import Path

import torch

from reprolab.checks import ConfigError, DataFileNotFoundError

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def checkpoint_file(path: str, key: str = "runner.checkpoint") -> Path:
    """A ``.ckpt`` file, or a run folder of the `lm` runner (its ``checkpoints/last.ckpt``); ``key``:
    the config key that named it (for the error)."""
    p = Path(path)
    if p.is_dir() or (not p.exists() and p.suffix != ".ckpt"):  # a run folder, or one not written yet
        p = p / "checkpoints" / "last.ckpt"
    if not p.is_file():
        raise DataFileNotFoundError(
            f"{key}={path!r}: no checkpoint at {p}. Give a run folder written by the lm runner "
            "(it holds checkpoints/last.ckpt) or the path of a .ckpt file." + _training_hint(p)
        )
    return p


def _training_hint(ckpt: Path) -> str:
    """`` ... run `python run.py experiment=<name>` first`` when ``ckpt`` is where a run of that experiment
    (``<log_dir>/<name>/<overrides>/checkpoints/last.ckpt``) writes its checkpoint; else ""."""
    from reprolab.registry import CONF_DIR

    if len(ckpt.parts) < 5 or ckpt.parts[-2] != "checkpoints":
        return ""
    name, key = ckpt.parts[-4], ckpt.parts[-3]
    if not (CONF_DIR / "experiment" / f"{name}.yaml").is_file():
        return ""
    extra = "" if key == "default" else f" with the overrides its folder is named after ({key})"
    return (f" The model is trained by experiment={name}: run `python run.py experiment={name}`{extra} first, with "
            f"the same paths.log_dir (it writes {ckpt}).")


def load_state(path: str, key: str = "runner.checkpoint") -> dict:
    """The model's state dict from an `lm` runner checkpoint (Lightning's ``model.`` prefix removed)."""
    ckpt = torch.load(checkpoint_file(path, key), map_location="cpu", weights_only=False)
    state = ckpt.get("state_dict", ckpt)
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")} or state


def _vocab_of(state: dict) -> int:
    for key, t in state.items():
        if key.endswith(("embed_tokens.weight", "wte.weight")):
            return t.shape[0]
    raise ValueError("the checkpoint has no token embedding (embed_tokens / wte): is it an lm runner checkpoint?")


def build_model(model_cfg, checkpoint, vocab_size, dtype: str, device: str, temperature=None):
    """The model in eval mode on ``device``: from ``checkpoint`` (weights trained by the lm runner),
    else pretrained (``model.pretrained``), else built from config with random init. ``temperature``
    (a `TemperatureMethod`) is attached before the weights load, so a checkpoint's tau network (TempNet's)
    loads with the model; a checkpoint without one decodes with the plugin's initial tau (a warning)."""
    from reprolab.models.assemble import attach_temperature

    if checkpoint:
        state = load_state(checkpoint)
        model = model_cfg.build(_vocab_of(state))
        if temperature is not None:
            attach_temperature(model, temperature)
        missing, unexpected = model.load_state_dict(state, strict=False)
        untrained_tau = [k for k in missing if k.startswith("temperature.")]
        missing = [k for k in missing if not k.startswith("temperature.")]
        if missing or unexpected:
            raise ConfigError(
                f"runner.checkpoint={checkpoint!r} does not fit model={model_cfg.arch} (hidden {model_cfg.hidden_size}, "
                f"{model_cfg.num_layers} layers): missing {missing[:4]}, unexpected {unexpected[:4]}. "
                "Use the model config the checkpoint was trained with (and its temperature=..., if it trained one)."
            )
        if untrained_tau:
            log.warning(f"runner.checkpoint={checkpoint!r} holds no weights for temperature={temperature.registered_name}: "
                        "decoding with its initial tau network (train one with the lm runner, or use a fixed tau).")
        log.info(f"loaded {checkpoint_file(checkpoint)}")
    else:
        model = model_cfg.build(vocab_size)
        if temperature is not None:
            attach_temperature(model, temperature)
    return model.to(device=device, dtype=DTYPES[dtype]).eval()


def load_weights(model, path: str, key: str, tokenizer: str | None = None) -> None:
    """Load the weights of an `lm` runner checkpoint (a run folder or a .ckpt) into ``model``, which
    must have the same architecture and vocabulary; ``key`` names the config key in errors. ``tokenizer``:
    this run's ``data.tokenizer``, checked against the one the checkpoint's run folder recorded (two
    tokenizers of one vocabulary size, e.g. Llama-2's and Mistral's 32000, number tokens differently)."""
    state = load_state(path, key)
    vocab, ours = _vocab_of(state), model.config.vocab_size
    if vocab != ours:
        raise ConfigError(f"{key}={path!r} has a vocabulary of {vocab} tokens and this run's model {ours}: both must "
                          "score the same token ids. Use a checkpoint trained with this run's data and tokenizer.")
    theirs = _tokenizer_of(checkpoint_file(path, key))
    if tokenizer and theirs and theirs != tokenizer:
        raise ConfigError(f"{key}={path!r} was trained on data.tokenizer={theirs!r} and this run reads its data with "
                          f"data.tokenizer={tokenizer!r}: the same ids would mean different tokens. Use a checkpoint "
                          f"trained with {tokenizer!r}, or set data.tokenizer={theirs}.")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ConfigError(f"{key}={path!r} does not fit this run's model: missing {missing[:4]}, unexpected "
                          f"{unexpected[:4]}. Use the model config the checkpoint was trained with.")
    log.info(f"{key}: loaded {checkpoint_file(path, key)}")


def _tokenizer_of(ckpt: Path) -> str | None:
    """The data.tokenizer recorded in the config.yaml of the run folder that holds ``ckpt`` (None: none recorded)."""
    import yaml

    config = ckpt.parent.parent / "config.yaml"
    if ckpt.parent.name != "checkpoints" or not config.is_file():
        return None
    data = (yaml.safe_load(config.read_text()) or {}).get("data") or {}
    return data.get("tokenizer") if isinstance(data, dict) else None


def build_tokenizer(name: str):
    from reprolab.data.tokenizers import build_tokenizer as build

    if name == "char":
        raise ConfigError("runner.tokenizer=char needs the training corpus; use byte or an HF tokenizer id.")
    return build(name, instead=(
        "the tokenizer is runner.tokenizer, by default the pretrained model's own (model.hf_id): fetch it with the "
        "model, or evaluate without the hub a model trained here with byte tokens (GEAR's CPU analog: "
        "experiment=gear_recall_train, then experiment=gear_recall_2bit)."))
