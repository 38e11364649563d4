"""Decoding with an explicit cache, one token per step, and the measurements around it.

`free_run` generates with one cache (accuracy, speed, KV bytes). `lockstep` advances an fp16
reference cache and the method's cache side by side on the same tokens (the reference's choice,
or a given continuation) and measures, per step, KL(p_fp16 ‖ p_cache), top-1 agreement
and the next-token log-likelihood under both. Prompts are left-padded; positions come from the
attention mask.
Each new token is ``choose(logits)``: greedy (argmax) by default, or a sampler from
`runners.generate.sampling.chooser` (seeded per row, so a sampled free run and its reference draw alike).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


def _dense_kv(cache):
    return [t for layer in cache.layers if getattr(layer, "keys", None) is not None for t in (layer.keys, layer.values)]


def kv_measured(cache) -> int:
    """Bytes of the tensors the cache stores (cheap: called every decode step for the peak)."""
    if hasattr(cache, "nbytes"):
        return cache.nbytes()
    return sum(t.numel() * t.element_size() for t in _dense_kv(cache))


def kv_stats(cache) -> tuple[int, float, int]:
    """(measured bytes, nominal bytes by the paper's formula, bytes of an fp16 cache of the same tokens)."""
    if hasattr(cache, "nbytes"):
        return cache.nbytes(), cache.nominal_bytes(), cache.fp16_bytes()
    entries = sum(t.numel() for t in _dense_kv(cache))
    return kv_measured(cache), 2.0 * entries, 2 * entries


def left_pad(prompts: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    n = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), n), pad_id, dtype=torch.long)
    mask = torch.zeros(len(prompts), n, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, n - len(p):] = torch.tensor(p)
        mask[i, n - len(p):] = 1
    return ids.to(device), mask.to(device)


class Stepper:
    """One sequence batch through one cache: ``prefill`` then ``step(tokens)``; logits in fp32."""

    def __init__(self, model, cache, ids, mask):
        self.model, self.cache = model, cache
        self.mask = mask
        self.pos = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids, attention_mask=mask, position_ids=self.pos, cache=cache, use_cache=True)
        self.logits = out.logits[:, -1].float()
        self.pos = self.pos[:, -1:]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(self.mask.shape[0], 1)], 1)
        self.pos = self.pos + 1
        out = self.model(input_ids=tokens[:, None], attention_mask=self.mask, position_ids=self.pos,
                         cache=self.cache, use_cache=True)
        self.logits = out.logits[:, -1].float()
        return self.logits


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


@dataclass
class FreeRun:
    tokens: list[list[int]]
    seconds: float
    new_tokens: int
    kv: tuple[int, float, int]
    peak_kv_bytes: int


@torch.no_grad()
def free_run(model, cache, ids, mask, max_new: int, is_done, choose=None) -> FreeRun:
    """Token = ``choose(logits)`` (None: greedy); a row stops when ``is_done(row_tokens)``; all after ``max_new``."""
    _sync(ids.device)
    t0 = time.perf_counter()
    s = Stepper(model, cache, ids, mask)
    B = ids.shape[0]
    out: list[list[int]] = [[] for _ in range(B)]
    done = [False] * B
    peak = 0
    for i in range(max_new):
        tok = s.logits.argmax(-1) if choose is None else choose(s.logits)
        for b, t in enumerate(tok.tolist()):
            if not done[b]:
                out[b].append(t)
                done[b] = is_done(out[b])
        peak = max(peak, kv_measured(cache))
        if all(done) or i == max_new - 1:
            break
        s.step(tok)
    _sync(ids.device)
    return FreeRun(out, time.perf_counter() - t0, sum(len(o) for o in out), kv_stats(cache), peak)


@dataclass
class Lockstep:
    ref_tokens: list[list[int]]
    kv: tuple[int, float, int] = (0, 0.0, 0)             # the method cache's kv_stats at the end
    kl: list[float] = field(default_factory=list)        # per (row, step)
    top1: list[float] = field(default_factory=list)
    nll_ref: list[float] = field(default_factory=list)   # forced tokens only
    nll_cache: list[float] = field(default_factory=list)


@torch.no_grad()
def lockstep(model, ref_cache, cache, ids, mask, max_new: int, is_done, forced: list[list[int]] | None = None,
             choose=None) -> Lockstep:
    """Reference and method caches on the same tokens: ``choose(reference logits)``
    (None: greedy), or ``forced``."""
    ref, test = Stepper(model, ref_cache, ids, mask), Stepper(model, cache, ids, mask)
    B = ids.shape[0]
    steps = max(len(f) for f in forced) if forced is not None else max_new
    res = Lockstep([[] for _ in range(B)])
    done = [False] * B
    for i in range(steps):
        lp_ref, lp = F.log_softmax(ref.logits, -1), F.log_softmax(test.logits, -1)
        kl = (lp_ref.exp() * (lp_ref - lp)).sum(-1)
        top1 = (lp_ref.argmax(-1) == lp.argmax(-1)).float()
        if forced is not None:
            tok = torch.tensor([f[i] if i < len(f) else 0 for f in forced], device=ids.device)
        else:
            tok = lp_ref.argmax(-1) if choose is None else choose(ref.logits)
        for b in range(B):
            active = (i < len(forced[b])) if forced is not None else not done[b]
            if not active:
                continue
            res.kl.append(kl[b].item())
            res.top1.append(top1[b].item())
            if forced is not None:
                res.nll_ref.append(-lp_ref[b, tok[b]].item())
                res.nll_cache.append(-lp[b, tok[b]].item())
            else:
                res.ref_tokens[b].append(int(tok[b]))
                done[b] = is_done(res.ref_tokens[b])
        if (forced is None and all(done)) or i == steps - 1:
            break
        ref.step(tok)
        test.step(tok)
    res.kv = kv_stats(cache)
    return res


def agreement(ref: list[int], test: list[int]) -> tuple[float, float]:
    """(position-wise match rate over the reference's length, matched prefix / reference length)."""
    if not ref:
        return 1.0, 1.0
    same = [i < len(test) and test[i] == r for i, r in enumerate(ref)]
    prefix = next((i for i, s in enumerate(same) if not s), len(ref))
    return sum(same) / len(ref), prefix / len(ref)
