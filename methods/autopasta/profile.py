"""Head selection by coarse-to-fine profiling (AutoPASTA; spec §2.4): steer all heads of each layer
(L evaluations), then each head of the ``top_layers`` best layers alone (K_L x H), rank the heads, and
keep the best of the candidate sets "top-k heads" on the same held-out examples. Cost L + K_L·H
evaluations (+ one per candidate k) instead of PASTA's L·H."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

Heads = dict[str, list[int]]


@dataclass
class Profile:
    coarse: dict[str, float]                # layer -> score with all its heads steered
    fine: dict[str, float]                  # "layer.head" -> score with that head alone
    ranking: list[tuple[int, int]]          # (layer, head), best first
    evaluations: int                        # coarse + fine configurations scored
    candidates: dict[str, float] = field(default_factory=dict)  # k -> score of the top-k heads
    heads: Heads = field(default_factory=dict)  # the chosen head set

    def to_json(self) -> dict:
        return asdict(self)


def coarse_to_fine(score: Callable[[Heads], float], num_layers: int, num_heads: int, top_layers: int) -> Profile:
    """``score(heads)``: the task metric on the profiling examples with ``heads`` steered (higher is better)."""
    if not 1 <= top_layers <= num_layers:
        raise ValueError(f"method.top_layers={top_layers} must be in [1, {num_layers}] (the model's layers).")
    coarse = {str(l): score({str(l): list(range(num_heads))}) for l in range(num_layers)}
    best = sorted(range(num_layers), key=lambda l: (-coarse[str(l)], l))[:top_layers]
    fine = {f"{l}.{h}": score({str(l): [h]}) for l in best for h in range(num_heads)}
    ranking = sorted(((l, h) for l in best for h in range(num_heads)), key=lambda lh: (-fine[f"{lh[0]}.{lh[1]}"], lh))
    return Profile(coarse, fine, ranking, len(coarse) + len(fine))


def top_heads(ranking: list[tuple[int, int]], k: int) -> Heads:
    out: Heads = {}
    for l, h in ranking[:k]:
        out.setdefault(str(l), []).append(h)
    return {l: sorted(ids) for l, ids in out.items()}


def select(profile: Profile, score: Callable[[Heads], float], head_counts: list[int]) -> Heads:
    """The best of the top-k head sets (k in ``head_counts``, capped at the ranked heads; ties: fewer heads)."""
    ks = sorted({min(k, len(profile.ranking)) for k in head_counts})
    profile.candidates = {str(k): score(top_heads(profile.ranking, k)) for k in ks}
    best = max(ks, key=lambda k: (profile.candidates[str(k)], -k))
    profile.heads = top_heads(profile.ranking, best)
    return profile.heads
