"""Highlights as token spans: from per-example ``(start, end)`` spans (end exclusive, in the example's own
prompt positions) to the ``(batch, [K,] width)`` bool mask of a left-padded batch that
`reprolab.models.attention.highlighting` takes."""
from __future__ import annotations

from typing import Optional, Sequence

import torch

Span = tuple[int, int]


def check_spans(spans: Sequence[Span], prompt_len: int, where: str = "highlight") -> None:
    """Every span must be a non-empty range inside the prompt; an empty list is refused (pass None to
    leave an example unsteered)."""
    if not spans:
        raise ValueError(f"{where}: no span is highlighted. Give at least one (start, end) token span of the "
                         "context, or None to decode the example unsteered (direct prompting).")
    for start, end in spans:
        if not (0 <= start < end <= prompt_len):
            raise ValueError(f"{where}: span ({start}, {end}) is outside the prompt's {prompt_len} tokens: a highlight "
                             "must lie in the context (0 <= start < end <= prompt length, end exclusive).")


def highlight_mask(spans: Sequence[Optional[Sequence[Span]]], prompt_lens: Sequence[int], width: int,
                   sections: bool = False, device=None) -> torch.Tensor:
    """``(batch, width)`` bool (or ``(batch, K, width)`` with ``sections``: one plane per span, K the most
    spans of an example) for prompts left-padded to ``width``; an example whose spans are None gets an
    all-False row (unsteered)."""
    k = max((len(s) for s in spans if s), default=1) if sections else 1
    mask = torch.zeros(len(spans), k, width, dtype=torch.bool)
    for b, (example, n) in enumerate(zip(spans, prompt_lens)):
        if example is None:
            continue
        check_spans(example, n, f"highlight of example {b}")
        for i, (start, end) in enumerate(example):
            mask[b, i if sections else 0, width - n + start : width - n + end] = True
    return (mask if sections else mask[:, 0]).to(device)


def encode_segments(tokenizer, segments: Sequence[str], marked: Sequence[bool],
                    special: bool = True) -> tuple[list[int], list[Span]]:
    """Token ids of the concatenated ``segments`` and the token span of each marked one. Each segment is
    tokenised on its own (the tokenizer's special tokens, e.g. BOS, only with the first and only when
    ``special``: a chat template writes its own), so spans are exact by construction and start on the
    segment's first real token; cut segments at whitespace (a sentence keeps its leading space) and BPE
    tokenises them as it would the whole string."""
    ids: list[int] = []
    out: list[Span] = []
    for i, (text, mark) in enumerate(zip(segments, marked)):
        piece = tokenizer.encode(text) if i == 0 and special else _encode_plain(tokenizer, text)
        if mark:
            out.append((len(ids), len(ids) + len(piece)))
        ids += piece
    return ids, out


def _encode_plain(tokenizer, text: str) -> list[int]:
    tok = getattr(tokenizer, "tok", None)  # an HF tokenizer: no BOS inside the prompt
    return tok(text, add_special_tokens=False)["input_ids"] if tok is not None else tokenizer.encode(text)
