"""Greedy decoding and sampling (temperature, top-k, top-p, n samples per prompt), seeded and batched.

`Sampling` is the schema of a ``runner.sampling`` node. `next_tokens` chooses one token per row
from fp32 logits; `generate` decodes many prompts x samples in left-padded batches through
`decode.free_run` with any KV cache (``make_cache``), optionally reusing a `GenerationCache` on disk.

Reproducibility: the random numbers of (prompt i, sample j) come from one CPU ``torch.Generator``
seeded from (seed, i, j) alone, one uniform per step, turned into a token by inverse-CDF lookup.
So a sample does not depend on the batch size, the batch order or the device's RNG.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import torch

from reprolab import checks

KEY = "runner.sampling"  # how the node is typed on the command line (error messages name it)


@dataclass
class Sampling:
    """How to choose each new token (HF ``generate`` semantics).

    do_sample: False = greedy (argmax; temperature, top_k and top_p do not change it).
    temperature: logits are divided by it before top-k / top-p (> 0).
    top_k: keep the k most likely tokens (0 = off). top_p: nucleus, keep the smallest set of most
      likely tokens whose probability mass is >= top_p, always the top token (1.0 = off).
    num_samples: sequences per prompt (> 1 needs do_sample).
    max_new_tokens: new tokens per sequence at most (None: the caller's budget, e.g. the task's).
    seed: with the prompt and sample index, fixes every draw.
    """

    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    num_samples: int = 1
    max_new_tokens: Optional[int] = None
    seed: int = 0

    def __post_init__(self):
        checks.positive(f"{KEY}.temperature", self.temperature)
        checks.non_negative(f"{KEY}.top_k", self.top_k)
        checks.in_range(f"{KEY}.top_p", self.top_p, 0.0, 1.0, lo_open=True)
        checks.positive(f"{KEY}.num_samples", self.num_samples)
        if self.max_new_tokens is not None:
            checks.positive(f"{KEY}.max_new_tokens", self.max_new_tokens)
        if not self.do_sample and self.num_samples > 1:
            raise checks.ConfigError(
                f"{KEY}.num_samples={self.num_samples} with {KEY}.do_sample=false: greedy decoding gives the same "
                f"sequence every time; set {KEY}.do_sample=true or {KEY}.num_samples=1.")


# ---- choosing a token ----------------------------------------------------------------------------
def row_seed(seed: int, prompt: int, sample: int) -> int:
    """A 63-bit seed that depends only on (seed, prompt index, sample index)."""
    digest = hashlib.blake2b(f"{seed},{prompt},{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def row_generators(seed: int, rows: list[tuple[int, int]]) -> list[torch.Generator]:
    """One CPU generator per (prompt, sample) row."""
    return [torch.Generator().manual_seed(row_seed(seed, i, j)) for i, j in rows]


def filtered_logits(logits: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """fp32 logits / temperature, -inf outside the top-k and then the top-p set (HF's warper order)."""
    scores = logits.float() / sampling.temperature
    vocab = scores.shape[-1]
    if 0 < sampling.top_k < vocab:
        kth = torch.topk(scores, sampling.top_k, dim=-1).values[..., -1:]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
        probs = sorted_scores.softmax(-1)
        mass_before = probs.cumsum(-1) - probs  # mass of the more likely tokens
        drop = mass_before >= sampling.top_p     # the set already holds >= top_p without this one
        drop[..., 0] = False
        scores = scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return scores


def next_tokens(logits: torch.Tensor, sampling: Sampling, generators: Optional[list[torch.Generator]] = None) -> torch.Tensor:
    """One token per row of ``logits`` [rows, vocab]: argmax when greedy, else a draw from
    softmax(filtered_logits) using one uniform from each row's generator."""
    if not sampling.do_sample:
        return logits.argmax(-1)
    if generators is None or len(generators) != logits.shape[0]:
        raise ValueError(f"sampling needs one generator per row: {logits.shape[0]} rows, "
                         f"{'no' if generators is None else len(generators)} generators (see row_generators).")
    probs = filtered_logits(logits, sampling).softmax(-1).double()
    cdf = probs.cumsum(-1)
    u = torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators]).to(logits.device)
    tok = (cdf <= (u * cdf[:, -1])[:, None]).sum(-1)  # first index whose cdf exceeds u * total
    last_kept = probs.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(-1)  # rounding never picks a dropped token
    return torch.minimum(tok, last_kept)


def chooser(sampling: Sampling, rows: list[tuple[int, int]], logits_hook: Optional[Callable] = None) -> Callable:
    """``choose(logits) -> tokens`` for `decode.free_run` / `decode.lockstep`: rows are the batch's
    (prompt index, sample index); ``logits_hook(logits) -> logits`` runs first (e.g. a temperature head)."""
    gens = row_generators(sampling.seed, rows) if sampling.do_sample else None

    def choose(logits: torch.Tensor) -> torch.Tensor:
        if logits_hook is not None:
            logits = logits_hook(logits)
        return next_tokens(logits, sampling, gens)

    return choose


# ---- generating ---------------------------------------------------------------------------------
@dataclass
class Generations:
    """tokens[i][j]: the new token ids of sample j of prompt i (eos included when reached)."""

    tokens: list[list[list[int]]]
    new_tokens: int
    seconds: float
    cached: bool = False  # read from a GenerationCache (new_tokens / seconds are the original run's)

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else float("nan")


def _check_prompts(prompts) -> None:
    if not prompts:
        raise checks.UserError("generate() got no prompts: pass a list of token-id lists.")
    for i, p in enumerate(prompts):
        if not p or not all(isinstance(t, int) for t in p):
            raise checks.UserError(f"prompt {i} is {'empty' if not p else 'not a list of int token ids'}: "
                                   "every prompt needs at least one token id (an int).")


@torch.no_grad()
def generate(model, prompts: list[list[int]], sampling: Sampling, *, pad_id: int, eos_id: Optional[int] = None,
             make_cache: Optional[Callable] = None, batch_size: int = 8, logits_hook: Optional[Callable] = None,
             cache=None, fingerprint: Optional[str] = None) -> Generations:
    """``sampling.num_samples`` continuations of every prompt (lists of token ids).

    Rows (prompt, sample) are decoded ``batch_size`` at a time, left-padded with ``pad_id``, each
    through a fresh KV cache from ``make_cache()`` (default: transformers' DynamicCache). A row stops
    after ``eos_id`` (kept) or ``sampling.max_new_tokens`` tokens. ``cache``: a `GenerationCache`;
    then ``fingerprint`` must name the model and everything else that changes the outputs (weights
    file and its size/mtime or an HF id, a lossy KV cache, the logits hook), and a stored result for
    the same fingerprint, prompts, sampling and eos is returned without calling the model.
    """
    from runners.generate import decode

    if sampling.max_new_tokens is None:
        raise checks.ConfigError(f"{KEY}.max_new_tokens is unset: generate() needs a budget of new tokens; set it.")
    checks.positive("batch_size", batch_size)
    _check_prompts(prompts)
    key = None
    if cache is not None:
        if not fingerprint:
            raise checks.UserError("generate(cache=...) needs fingerprint=: a string naming the model (checkpoint "
                                   "path + size/mtime, or an HF id) so that another model never reuses these generations.")
        key = cache.key(fingerprint, prompts, sampling, eos_id)
        hit = cache.load(key)
        if hit is not None:
            return hit
    if make_cache is None:
        from transformers import DynamicCache

        def make_cache():
            return DynamicCache(config=model.config)

    device = next(model.parameters()).device
    rows = [(i, j) for i in range(len(prompts)) for j in range(sampling.num_samples)]
    tokens: list[list[list[int]]] = [[[] for _ in range(sampling.num_samples)] for _ in prompts]
    new, seconds = 0, 0.0

    def is_done(seq):
        return eos_id is not None and seq[-1] == eos_id

    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        ids, mask = decode.left_pad([prompts[i] for i, _ in chunk], pad_id, device)
        run = decode.free_run(model, make_cache(), ids, mask, sampling.max_new_tokens, is_done,
                              choose=chooser(sampling, chunk, logits_hook))
        for (i, j), seq in zip(chunk, run.tokens):
            tokens[i][j] = seq
        new += run.new_tokens
        seconds += run.seconds
    out = Generations(tokens, new, seconds)
    if cache is not None:
        cache.save(key, out, fingerprint=fingerprint, prompts=prompts, sampling=sampling, eos_id=eos_id)
    return out


def settings(sampling: Sampling, eos_id: Optional[int]) -> dict:
    """Everything besides the model and the prompts that decides the generated tokens."""
    return {"sampling": asdict(sampling), "eos_id": eos_id}
