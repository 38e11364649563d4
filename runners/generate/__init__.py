"""The `generate` runner: evaluate a decoder at inference time with a pluggable KV cache.

Slots: ``kv_cache`` (required, a `reprolab.roles.CacheMethod`; ``method=gear`` fills it) and ``steering``
(optional: PASTA steers the task's highlighted spans, AutoPASTA finds them itself) and ``temperature`` (optional:
TempNet's per-token tau, or a global one, divides the logits in every decoding path). The task (`runner.task`)
supplies prompts and scores generations; the model comes from the ``model`` group (built, loaded
from an lm-runner checkpoint, or pretrained). Results (``table/*``):

- accuracy (generate tasks; ``accuracy_fp16`` for the reference), ppl / ppl_fp16 (score tasks);
- agreement / prefix_agreement of the free-running generation with the fp16 one;
- kl (mean per-step KL(p_fp16 ‖ p_cache), nats) and top1 (teacher-forced top-1 agreement);
- kv_bytes (measured from the stored tensors at the end of each batch, mean), kv_fraction
  (nominal formula bytes / fp16 bytes of the same tokens), kv_fraction_measured, peak_kv_bytes;
- tokens_per_s (generated tokens / generation wall time of the free run) and, on CUDA, peak_mem_gb
  (torch.cuda.max_memory_allocated during the free run, weights included).

After every batch the measurements so far are saved to ``checkpoints/last.ckpt``; a killed run
started again with the same command (``resume=auto``) continues after its last finished batch.
"""
from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


def _mean(xs) -> float:
    xs = list(xs)
    return sum(xs) / len(xs) if xs else float("nan")


def run(cfg, run_dir, objs: dict) -> dict:
    """``objs``: the validated config (`reprolab.config.validate`); the cache is ``objs["roles"].kv_cache``."""
    import torch

    from reprolab.checks import ConfigError
    from reprolab.tracking import init_wandb
    from runners.generate.model import build_model, build_tokenizer
    from runners.generate.rescale import rescale_channels

    runner, method, model_cfg = objs["runner"], objs["roles"].kv_cache, objs["model"]
    task = runner.task
    torch.manual_seed(cfg.seed)
    device = runner.device if runner.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = None
    if task.own_vocab is None:
        tokenizer = build_tokenizer(runner.tokenizer or (model_cfg.hf_id if model_cfg.pretrained else "byte"))
    vocab = task.own_vocab or tokenizer.vocab_size
    model = build_model(model_cfg, runner.checkpoint, vocab, runner.dtype, device, objs["roles"].temperature)
    if task.own_vocab is not None and model.config.vocab_size < task.own_vocab:
        raise ConfigError(f"the model's vocabulary ({model.config.vocab_size}) is smaller than the task's ({task.own_vocab}): "
                         "evaluate the recall task with the sizes the model was trained on.")
    if runner.rescale.alpha != 1.0:
        rescale_channels(model, runner.rescale.alpha, runner.rescale.pairs, runner.rescale.seed)
    wandb_run = init_wandb(cfg, run_dir)

    acc = Accumulator()
    if run_dir.resuming:  # a long evaluation killed midway continues after its last finished batch
        from reprolab.checkpoint import load as load_checkpoint  # names a corrupt file and the fix

        acc = load_checkpoint(run_dir.last_ckpt, weights_only=False)["accumulator"]
        log.info(f"resuming after {len(acc.rows)} finished batches")

    def after_batch(acc, row):
        _save(run_dir, acc)
        if wandb_run is not None:
            wandb_run.log({f"eval/{k}": v for k, v in row.items()}, step=row["batch"])

    acc, out = evaluate(model, method, task, tokenizer, device=device, batch_size=runner.batch_size,
                        reference=runner.reference, sampling=runner.sampling, acc=acc, after_batch=after_batch,
                        steering=objs["roles"].steering)
    _write_csv(run_dir.path / "metrics.csv", acc.rows)
    return out


def evaluate(model, method, task, tokenizer, *, device, batch_size: int = 1, reference: bool = True, sampling=None,
             acc: "Accumulator | None" = None, after_batch=None, steering=None) -> tuple["Accumulator", dict]:
    """Score ``task`` with a model decoding through the KV cache plugin ``method``: batch by batch
    (continuing after the batches ``acc`` already holds), ``after_batch(acc, row)`` after each.
    Returns the accumulator and the summary (``table/*``). Any runner that decodes calls it: the
    `generate` runner, and the `lm` runner after training (``runner.eval``). ``steering``: a `SteeringMethod`
    (None: unsteered), set up once (`SteeringMethod.setup`) and applied per batch."""
    from reprolab.models.attention import install
    install(model, method, steering)  # the model's one attention hook (`reprolab.models.attention`)
    pad = 0 if tokenizer is None or getattr(tokenizer, "pad_id", None) is None else tokenizer.pad_id
    decoder = None
    if steering is not None:
        from runners.generate.highlight import Decoder

        decoder = Decoder(model, method, steering, pad, device, task.batch_size or batch_size)
        steering.setup(model, task, tokenizer, decoder)
    examples = task.examples(tokenizer)
    acc = acc if acc is not None else Accumulator()
    bs = task.batch_size or batch_size
    for start in range(len(acc.rows) * bs, len(examples), bs):
        row = evaluate_batch(model, method, task, tokenizer, examples[start : start + bs], pad, device, reference, acc,
                             sampling, start, steering, decoder)
        row["batch"] = start // bs
        acc.rows.append(row)
        log.info(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if after_batch is not None:
            after_batch(acc, row)
    out = _summary(acc, task.mode)
    if acc.correct:
        out["table/accuracy"] = task.accuracy(examples, acc.correct)
        out.update({f"table/accuracy_{k}": v for k, v in task.breakdown(examples, acc.correct).items()})
    if acc.correct_ref:
        out["table/accuracy_fp16"] = task.accuracy(examples, acc.correct_ref)
    return acc, out


@dataclass
class Accumulator:
    """Per-batch rows (metrics.csv) and the per-step / per-example values the summary averages."""

    rows: list = field(default_factory=list)
    kl: list = field(default_factory=list)
    top1: list = field(default_factory=list)
    nll_ref: list = field(default_factory=list)
    nll: list = field(default_factory=list)
    correct: list = field(default_factory=list)
    correct_ref: list = field(default_factory=list)


def evaluate_batch(model, method, task, tokenizer, batch, pad, device, reference: bool, acc: Accumulator,
                   sampling=None, first: int = 0, steering=None, decoder=None) -> dict:
    """Decode one batch of examples (``first``: the index of its first example); returns its
    metrics.csv row and adds to ``acc``. ``sampling``: a `Sampling` (None: greedy, the task's budget).
    ``steering``: decode with its highlights of the batch (`runners.generate.highlight.prepare`)."""
    import torch
    from transformers import DynamicCache

    from reprolab.models.attention import highlighting
    from runners.generate import decode
    from runners.generate.sampling import chooser

    highlight, steer_row = None, {}
    if steering is not None:
        from runners.generate.highlight import prepare

        batch, highlight, steer_row = prepare(model, steering, task, tokenizer, batch, decoder, device)

    def is_done(tokens):
        return task.is_done(tokenizer, tokens)

    budget = task.new_tokens() if sampling is None or sampling.max_new_tokens is None else sampling.max_new_tokens

    def choose():  # a fresh sampler per decode, seeded per example: the reference and the free run draw alike
        return chooser(sampling, [(first + b, 0) for b in range(len(batch))]) if sampling and sampling.do_sample else None

    ids, mask = decode.left_pad([e.prompt for e in batch], pad, device)
    forced = [e.continuation for e in batch] if task.mode == "score" else None
    row = {"examples": len(batch), **steer_row}
    ref = None
    if reference or forced is not None:  # fp16 and method caches in lockstep: KL, top-1, NLL
        with highlighting(model, highlight):
            ref = decode.lockstep(model, DynamicCache(config=model.config), method.make_cache(model.config), ids, mask,
                                  budget, is_done, forced, choose=choose())
        acc.kl += ref.kl
        acc.top1 += ref.top1
        acc.nll_ref += ref.nll_ref
        acc.nll += ref.nll_cache
        row.update(kl=_mean(ref.kl), top1=_mean(ref.top1))
        kv, peak = ref.kv, ref.kv[0]
    if task.mode == "generate":  # free-running generation (greedy unless runner.sampling.do_sample) with the method's cache
        if device == "cuda":  # peak memory of this generation alone (not of the lockstep reference)
            torch.cuda.reset_peak_memory_stats()
        with highlighting(model, highlight):
            free = decode.free_run(model, method.make_cache(model.config), ids, mask, budget, is_done, choose=choose())
        if device == "cuda":
            row["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
        scores = [task.score(tokenizer, e, g) for e, g in zip(batch, free.tokens)]
        acc.correct += [s["correct"] for s in scores]
        row.update(accuracy=_mean(s["correct"] for s in scores), tokens_per_s=free.new_tokens / free.seconds,
                   new_tokens=free.new_tokens, seconds=free.seconds)
        for key in ("exact", "f1"):
            if key in scores[0]:
                row[key] = _mean(s[key] for s in scores)
        kv, peak = free.kv, free.peak_kv_bytes
        if ref is not None:
            ref_scores = [task.score(tokenizer, e, g) for e, g in zip(batch, ref.ref_tokens)]
            acc.correct_ref += [s["correct"] for s in ref_scores]
            agree = [decode.agreement(r, g) for r, g in zip(ref.ref_tokens, free.tokens)]
            row.update(accuracy_fp16=_mean(s["correct"] for s in ref_scores), agreement=_mean(a for a, _ in agree),
                       prefix_agreement=_mean(p for _, p in agree))
    measured, nominal, fp16 = kv
    row.update(kv_bytes=measured, kv_fraction=nominal / fp16, kv_fraction_measured=measured / fp16, peak_kv_bytes=peak)
    return row


def _save(run_dir, acc: "Accumulator") -> None:
    """checkpoints/last.ckpt: everything measured so far (written atomically after every batch)."""
    from reprolab.checkpoint import save_atomic

    save_atomic({"accumulator": acc}, run_dir.last_ckpt)


def _write_csv(path, rows):
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k != "batch", k))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def _summary(acc: Accumulator, mode: str) -> dict:
    rows = acc.rows
    out = {}
    n = sum(r["examples"] for r in rows)
    for key in ("exact", "f1", "key_precision", "fallback", "agreement", "prefix_agreement", "kv_bytes", "kv_fraction",
                "kv_fraction_measured"):
        if any(key in r for r in rows):  # per-example means (the last batch may be smaller)
            out[f"table/{key}"] = sum(r[key] * r["examples"] for r in rows) / n
    out["table/peak_kv_bytes"] = max(r["peak_kv_bytes"] for r in rows)
    if acc.kl:
        out["table/kl"] = _mean(acc.kl)
        out["table/top1"] = _mean(acc.top1)
    if mode == "score":
        out["table/nll"] = _mean(acc.nll)
        out["table/ppl"] = math.exp(out["table/nll"])
        out["table/ppl_fp16"] = math.exp(_mean(acc.nll_ref))
    else:
        secs = sum(r["seconds"] for r in rows)
        out["table/tokens_per_s"] = sum(r["new_tokens"] for r in rows) / secs if secs else float("nan")
    if any("peak_mem_gb" in r for r in rows):
        out["table/peak_mem_gb"] = max(r["peak_mem_gb"] for r in rows)
    out["eval/examples"] = n
    return out
