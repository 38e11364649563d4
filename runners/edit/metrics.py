"""EasyEdit's edit metrics (../shared/papers/roselora.md §4.1), teacher-forced on (prompt, answer) pairs.

A pair is encoded as ``prompt + " " + answer``; its answer tokens are the last len(full) − len(prompt)
tokens (EasyEdit counts them the same way). At each answer position the model's argmax is compared:
- with the answer itself: edit success (``rewrite_acc``), generalisation (rephrase), portability;
- with the unedited model's argmax at the same position: locality.
Each pair's score is the mean over its answer tokens; a metric is the mean over pairs, then edits.
"""
from __future__ import annotations

import math
from collections import Counter

import torch
import torch.nn.functional as F


def encode(tokenizer, prompt: str, answer: str) -> tuple[list[int], int]:
    """(token ids of prompt + answer, number of answer tokens)."""
    n_prompt = len(tokenizer.encode(prompt))
    full = tokenizer.encode(f"{prompt} {answer}")
    if len(full) <= n_prompt:
        raise ValueError(f"the answer {answer!r} adds no token to the prompt {prompt!r} under this tokenizer.")
    return full, len(full) - n_prompt


def padded(rows: list[list[int]], pad: int, device) -> torch.Tensor:
    """Right-padded [n, max_len] (a causal model's earlier positions do not see the padding)."""
    out = torch.full((len(rows), max(map(len, rows))), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r)
    return out.to(device)


def answer_logits_positions(rows, n_answer):
    """(row, position) of the logits predicting each answer token."""
    return [(i, len(r) - n - 1 + j) for i, (r, n) in enumerate(zip(rows, n_answer)) for j in range(n)]


@torch.no_grad()
def predictions(model, encoded: list[tuple[list[int], int]], pad: int, batch_size: int) -> list[torch.Tensor]:
    """Per pair, the argmax token at each answer position (teacher-forced)."""
    device = next(model.parameters()).device
    out = []
    for s in range(0, len(encoded), batch_size):
        chunk = encoded[s : s + batch_size]
        rows, n_ans = [r for r, _ in chunk], [n for _, n in chunk]
        top = model(padded(rows, pad, device)).logits.argmax(-1).cpu()
        for i, (r, n) in enumerate(zip(rows, n_ans)):
            out.append(top[i, len(r) - n - 1 : len(r) - 1])
    return out


def accuracy(preds: list[torch.Tensor], encoded) -> list[float]:
    """Per pair, the fraction of answer tokens the argmax gets right."""
    return [(p == torch.tensor(r[len(r) - n :])).float().mean().item() for p, (r, n) in zip(preds, encoded)]


def agreement(post: list[torch.Tensor], pre: list[torch.Tensor]) -> list[float]:
    return [(a == b).float().mean().item() for a, b in zip(post, pre)]


def edit_loss(model, encoded: list[tuple[list[int], int]], pad: int) -> torch.Tensor:
    """Mean over the edits of the mean cross-entropy of their target tokens (prompt tokens carry no loss)."""
    device = next(model.parameters()).device
    rows = [r for r, _ in encoded]
    logits = model(padded(rows, pad, device)).logits
    losses = []
    for i, (r, n) in enumerate(encoded):
        target = torch.tensor(r[len(r) - n :], device=device)
        losses.append(F.cross_entropy(logits[i, len(r) - n - 1 : len(r) - 1].float(), target))
    return torch.stack(losses).mean()


def ngram_entropy(text: str) -> float:
    """EasyEdit's fluency of one generation: Σ_n w_n H_n over word n-grams n = 2, 3 with weights 2/3 and 4/3,
    H_n = −Σ f log2 f of the n-gram frequencies, the weighted mean (÷ Σ w = 2), ×100 by the caller. Words are
    whitespace tokens (EasyEdit uses NLTK's word_tokenize, which also splits punctuation)."""
    words = text.split()
    total = 0.0
    for n, w in ((2, 2 / 3), (3, 4 / 3)):
        grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
        count = sum(grams.values())
        if count:
            total += w * -sum(c / count * math.log2(c / count) for c in grams.values())
    return total / 2
