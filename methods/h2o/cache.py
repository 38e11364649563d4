"""H2O ("Heavy-Hitter Oracle") token dropping as a transformers Cache.

Zhang et al., "H2O: Heavy-Hitter Oracle for Efficient Generative Inference of Large Language
Models", arXiv:2306.14048; the GEAR v1 baseline (../shared/papers/gear.md §3.8).

Each (sequence, KV head) keeps a fixed budget of tokens: the ``recent`` most recent ones and the
``heavy`` ones with the largest accumulated attention (the sum, over all queries so far and over
the query heads sharing the KV head, of the softmax probability each key received). The budget
is set at prefill from the prompt length n: heavy = ⌈heavy_ratio·n⌉, recent = ⌈recent_ratio·n⌉.
After the prompt is attended in full, it is cut to the budget; every decode step appends one
token and, once over budget, evicts the non-recent token with the smallest accumulated score.

The scores need the attention probabilities, so the cache works with the ``h2o`` attention
function (`methods.h2o.attention`), which computes eager attention and reports the probabilities
back to the layer (the layer puts itself in the attention kwargs as ``h2o_layer``).
Left-padding tokens get score −inf (evicted first) and stay masked after eviction.
"""
from __future__ import annotations

import math

import torch

from methods.kvcache import MeasuredCache, MeasuredLayer


class H2OLayer(MeasuredLayer):
    cannot_crop = "an H2O cache cannot be cropped (evicted tokens are gone)"

    def __init__(self, heavy_ratio: float, recent_ratio: float):
        super().__init__()
        self.heavy_ratio, self.recent_ratio = heavy_ratio, recent_ratio
        self.heavy = self.recent = None
        self.pending_prefill = False

    def lazy_initialization(self, key_states, value_states) -> None:
        B, H, _, d = key_states.shape
        self.device = key_states.device
        self.keys = key_states.new_zeros(B, H, 0, d)
        self.values = value_states.new_zeros(B, H, 0, d)
        self.scores = torch.zeros(B, H, 0, device=self.device)
        self.valid = torch.zeros(B, H, 0, dtype=torch.bool, device=self.device)
        self.is_initialized = True

    @property
    def budget(self) -> int:
        return self.heavy + self.recent

    @property
    def pruned(self) -> bool:
        """True once stored tokens no longer line up with positions (the HF mask is then unusable)."""
        return self.keys.shape[-2] < self.seen

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = key_states.shape[-2]
        if self.seen == 0:
            self.heavy = max(1, math.ceil(self.heavy_ratio * n))
            self.recent = max(1, math.ceil(self.recent_ratio * n))
            self.pending_prefill = True
        B, H = key_states.shape[:2]
        self.keys = torch.cat([self.keys, key_states], -2)
        self.values = torch.cat([self.values, value_states], -2)
        self.scores = torch.cat([self.scores, self.scores.new_zeros(B, H, n)], -1)
        self.valid = torch.cat([self.valid, self.valid.new_ones(B, H, n)], -1)
        self.seen += n
        attn_kwargs = kwargs.get("kwargs")
        if attn_kwargs is None:
            raise RuntimeError("H2O needs a model that passes its attention kwargs to cache.update (LLaMA/GPT-2 style).")
        attn_kwargs["h2o_layer"] = self
        return self.keys, self.values

    def observe(self, probs: torch.Tensor, key_mask: torch.Tensor | None) -> None:
        """Add the attention ``probs`` [B, Hq, q, S] to the scores, then cut to the budget.

        ``key_mask`` [B, S] (True = a real token) marks left padding at prefill.
        """
        B, H, S = self.scores.shape
        received = probs.float().sum(2).view(B, H, -1, S).sum(2)  # over queries and the GQA group
        self.scores += received
        if key_mask is not None:
            self.valid &= key_mask[:, None, :]
        self.scores.masked_fill_(~self.valid, -math.inf)
        if self.pending_prefill:
            self.pending_prefill = False
            self._keep(self._select(self.budget))
        elif S > self.budget:
            self._keep(self._select(S - 1))

    def _select(self, keep: int) -> torch.Tensor:
        """Indices [B, H, keep] (in position order) of the recent window + the top-scored others."""
        S = self.scores.shape[-1]
        if S <= keep:
            return torch.arange(S, device=self.device).expand(*self.scores.shape[:2], S)
        recent = min(self.recent, keep)
        old = self.scores[..., : S - recent]
        top = old.topk(keep - recent, dim=-1).indices
        tail = torch.arange(S - recent, S, device=self.device).expand(*top.shape[:2], recent)
        return torch.cat([top.sort(-1).values, tail], -1)

    def _keep(self, idx: torch.Tensor) -> None:
        g = idx.unsqueeze(-1).expand(-1, -1, -1, self.keys.shape[-1])
        self.keys, self.values = self.keys.gather(2, g), self.values.gather(2, g)
        self.scores, self.valid = self.scores.gather(2, idx), self.valid.gather(2, idx)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        stored = self.keys.shape[-2] if self.is_initialized else 0
        return stored + query_length, self.seen - stored

    def _map_batch(self, fn) -> None:
        if self.is_initialized:
            self.keys, self.values, self.scores, self.valid = (fn(t) for t in (self.keys, self.values, self.scores, self.valid))


class H2OCache(MeasuredCache):
    """An `H2OLayer` per decoder layer (needs ``attn_implementation="h2o"``). The scores are
    bookkeeping and are not counted in ``nbytes()`` (H2O's own accounting)."""

    def __init__(self, num_layers: int, heavy_ratio: float, recent_ratio: float):
        super().__init__(layers=[H2OLayer(heavy_ratio, recent_ratio) for _ in range(num_layers)])
