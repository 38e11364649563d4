"""Perplexity of held-out text under compressed-cache decoding.

Each window of ``window`` tokens is split into a prefix (prefilled, then compressed like a prompt)
and the rest, which is fed one token at a time: every next-token log-probability comes from a
decode step that attends over the compressed cache. Windows are consecutive, non-overlapping,
from the start of the file.
"""
from __future__ import annotations

from runners.generate.tasks.base import Example


def windows(ids: list[int], window: int, prefix: int, count: int) -> list[Example]:
    out = []
    for start in range(0, len(ids) - window + 1, window):
        w = ids[start : start + window]
        out.append(Example(prompt=w[:prefix], continuation=w[prefix:]))
        if len(out) == count:
            break
    return out
