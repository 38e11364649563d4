"""Negatives for DFT: sampled once from the base model, scored by it, kept on disk and reused.

`load_or_make(source, model)` returns the K negatives of every training prompt and their reference
log-probs (pi_ref = the base model, under ``data.ref_prompt``; the official precompute_offline_ref_log_probs
path, spec §2.6). The file ``negatives-<key>.pt`` under ``data.cache_dir`` is keyed by a manifest: the
SHA-256 of the model's weights, the tokenizer and vocabulary, the data (every prompt's tokens) and the
sampling settings; every run and seed that asks for the same negatives reads it. A file named by
``data.negatives_file`` is checked against the same manifest and refused when it was made with another
model, tokenizer or data. Generation is batched (`runners.generate.sampling.generate`, seeded per
(prompt, sample), so the negatives do not depend on the batch size) and its tokens/s are kept.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from reprolab.checks import ConfigError, UserError

log = logging.getLogger(__name__)
FORMAT = 1


@dataclass
class Negatives:
    answers: list[list[list[int]]]   # [prompt][k]: answer tokens of the k-th negative
    ref_logps: torch.Tensor          # (n, K) log pi_ref of each negative
    manifest: dict
    path: Path | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.manifest["generation"]["tokens_per_s"]


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 over the model's tensors (names, dtypes, shapes, bytes) in name order."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def sampling_of(cfg):
    from runners.generate.sampling import Sampling

    return Sampling(do_sample=True, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p,
                    num_samples=cfg.num_negatives, max_new_tokens=cfg.max_new_tokens, seed=cfg.gen_seed)


def manifest_of(source, model) -> dict:
    """What decides the negatives and their scores; the file key is its hash."""
    train = source.train
    return {"format": FORMAT, "model_sha256": weights_sha256(model), "tokenizer": source.tokenizer_id,
            "vocab_size": source.vocab_size, "eos_id": source.eos_id,
            "data_sha256": _sha([[e.prompt, e.gen_prompt] for e in train]), "num_prompts": len(train),
            "sampling": asdict(sampling_of(source.cfg)), "ref_prompt": source.cfg.ref_prompt}


def check_manifest(found: dict, want: dict, path) -> None:
    """Refuse a negatives file made for another model, tokenizer, data or sampling, naming what differs."""
    labels = {"model_sha256": "model weights", "tokenizer": "tokenizer", "vocab_size": "vocabulary",
              "data_sha256": "data (prompts)", "sampling": "sampling settings", "ref_prompt": "data.ref_prompt",
              "format": "file format", "eos_id": "eos id", "num_prompts": "number of prompts"}
    differ = [labels[k] for k in labels if found.get(k) != want.get(k)]
    if differ:
        raise UserError(f"negatives file {path} was made with other {', '.join(differ)} than this run's: it is not "
                        "reused. Unset data.negatives_file (this run's negatives are generated and cached under "
                        "data.cache_dir), or point it to a file made from this run's base model, tokenizer and data.")


@torch.no_grad()
def score(model, rows: list[tuple[list[int], list[int]]], pad_id: int, batch_size: int) -> torch.Tensor:
    """``(len(rows),)`` summed answer log-probs of (prompt, answer) rows under ``model``."""
    from methods.dft.data import padded
    from methods.dft.objective import answer_logps

    device = next(model.parameters()).device
    out = []
    for s in range(0, len(rows), batch_size):
        b = {k: v.to(device) for k, v in padded(rows[s : s + batch_size], pad_id).items()}
        out.append(answer_logps(model, b["input_ids"], b["labels"], b["attention_mask"])[0].float().cpu())
    return torch.cat(out)


def make(source, model, manifest: dict) -> Negatives:
    """Sample K negatives per training prompt from ``model`` and score them (eval mode, no grad)."""
    from runners.generate.sampling import generate

    cfg = source.cfg
    was_training = model.training
    model.eval()
    gens = generate(model, [e.gen_prompt for e in source.train], sampling_of(cfg), pad_id=source.pad_id,
                    eos_id=source.eos_id, batch_size=cfg.gen_batch_size)
    answers = [[source.negative_answer(g, e) for g in per_prompt] for e, per_prompt in zip(source.train, gens.tokens)]
    empty = [i for i, per in enumerate(answers) if any(len(a) == 0 for a in per)]
    if empty:
        raise ConfigError(f"{len(empty)} training prompts (first: {empty[0]}) have a negative with no answer token "
                          "left after truncation: raise data.max_length or lower data.max_prompt_length.")
    rows = [((e.prompt if cfg.ref_prompt == "train" else e.gen_prompt), a)
            for e, per in zip(source.train, answers) for a in per]
    ref = score(model, rows, source.pad_id, cfg.gen_batch_size).reshape(len(source.train), cfg.num_negatives)
    model.train(was_training)
    manifest = {**manifest, "generation": {"new_tokens": gens.new_tokens, "seconds": gens.seconds,
                                           "tokens_per_s": gens.tokens_per_s}}
    log.info(f"DFT negatives: {len(answers)} prompts x {cfg.num_negatives}, {gens.new_tokens} new tokens in "
             f"{gens.seconds:.1f} s ({gens.tokens_per_s:.0f} tokens/s)")
    return Negatives(answers, ref, manifest)


def read(path: Path) -> Negatives:
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
        return Negatives(data["answers"], data["ref_logps"], data["manifest"], path)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same advice
        raise UserError(f"negatives file {path} is unreadable ({type(e).__name__}: {e}): delete it and the negatives "
                        "are generated again.") from None


def load_or_make(source, model) -> Negatives:
    """The negatives of ``source``'s training prompts under ``model`` (from the cache when it has them)."""
    from reprolab.checkpoint import save_atomic

    cfg = source.cfg
    want = manifest_of(source, model)
    if cfg.negatives_file:
        path = Path(cfg.negatives_file)
        if not path.is_file():
            raise UserError(f"data.negatives_file={cfg.negatives_file!r} does not exist: unset it to generate the "
                            "negatives, or give the path of a negatives-<key>.pt file.")
        negs = read(path)
        check_manifest(negs.manifest, want, path)
    else:
        path = Path(cfg.cache_dir) / f"negatives-{_sha(want)[:24]}.pt" if cfg.cache_dir else None
        if path is not None and path.is_file():
            negs = read(path)
            check_manifest(negs.manifest, want, path)
            log.info(f"DFT negatives: reused {path}")
        else:
            negs = make(source, model, want)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_atomic({"answers": negs.answers, "ref_logps": negs.ref_logps, "manifest": negs.manifest}, path,
                            keep_previous=False)
                negs.path = path
    k = len(negs.answers[0]) if negs.answers else 0
    if cfg.negatives_per_step > k:
        raise ConfigError(f"data.negatives_per_step={cfg.negatives_per_step} is larger than the {k} cached negatives "
                          f"per prompt of {negs.path}: lower it, or generate more (data.num_negatives).")
    return negs
