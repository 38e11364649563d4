"""The `generate` runner's side of attention steering: the highlight mask of a batch, and `Decoder`,
the greedy decoding a steering's own stages use (AutoPASTA's stage 1 and head profiling) through the
run's KV cache."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from reprolab.models.attention import highlighting


def batch_highlight(batch: list, width: int, steering, device) -> Optional[torch.Tensor]:
    """The ``(batch, [K,] width)`` mask of the examples' ``meta["highlight"]`` spans (left-padded prompts);
    None when no example is highlighted."""
    from methods.pasta.spans import highlight_mask

    spans = [e.meta.get("highlight") for e in batch]
    if all(s is None for s in spans):
        return None
    sections = getattr(steering, "sections", "union") == "official"
    return highlight_mask(spans, [len(e.prompt) for e in batch], width, sections=sections, device=device)


def prepare(model, steering, task, tokenizer, batch: list, decoder: "Decoder", device):
    """(the examples as decoded, their highlight mask, the steering's per-batch statistics)."""
    batch, stats = steering.prepare(model, task, tokenizer, batch, decoder)
    width = max(len(e.prompt) for e in batch)
    return batch, batch_highlight(batch, width, steering, device), stats


@dataclass
class Decoder:
    """Greedy decoding of token prompts, ``batch_size`` at a time, through fresh caches of ``cache``."""

    model: Any
    cache: Any
    steering: Any
    pad: int
    device: Any
    batch_size: int

    def generate(self, examples: list, max_new: int, is_done: Callable | None = None,
                 steer: bool = True) -> list[list[int]]:
        """Each example's generated tokens; ``steer``: with the highlights in their ``meta``."""
        from runners.generate import decode

        done = is_done or (lambda tokens: False)
        out = []
        for i in range(0, len(examples), self.batch_size):
            chunk = examples[i : i + self.batch_size]
            ids, mask = decode.left_pad([e.prompt for e in chunk], self.pad, self.device)
            hl = batch_highlight(chunk, ids.shape[1], self.steering, self.device) if steer else None
            with highlighting(self.model, hl):
                out += decode.free_run(self.model, self.cache.make_cache(self.model.config), ids, mask, max_new, done).tokens
        return out
