"""Stage 2: map the model's key sentence (free text: verbatim, paraphrased, truncated or made up) back
to sentences of the original context, by cosine similarity of sentence embeddings.

``lexical`` (the default, offline and deterministic): TF-IDF bags of the SQuAD-normalised words, IDF
over the context's sentences. An HF encoder id (e.g. ``sentence-transformers/all-MiniLM-L6-v2``, the
reimplementations' choice): mean-pooled token states of that model.
"""
from __future__ import annotations

import math
from collections import Counter
from typing import Optional

import torch


def map_to_sentences(text: str, sentences: list[str], top_m: int = 1, encoder: str = "lexical",
                     min_similarity: float = 0.1) -> Optional[list[int]]:
    """Indices of the ``top_m`` context sentences most similar to ``text`` (ties: the first), or None when
    even the best is below ``min_similarity`` (an empty or unrelated output: the caller falls back)."""
    if not text.strip() or not sentences:
        return None
    sims = similarities(text, sentences, encoder)
    order = sorted(range(len(sentences)), key=lambda i: (-sims[i], i))
    if sims[order[0]] < min_similarity:
        return None
    return sorted(order[:top_m])


def similarities(text: str, sentences: list[str], encoder: str = "lexical") -> list[float]:
    if encoder == "lexical":
        return _lexical(text, sentences)
    emb = _hf_embed([text] + sentences, encoder)
    return torch.nn.functional.cosine_similarity(emb[:1], emb[1:]).tolist()


def _words(s: str) -> list[str]:
    from reprolab.data.qa import normalize_answer

    return normalize_answer(s).split()


def _lexical(text: str, sentences: list[str]) -> list[float]:
    bags = [Counter(_words(s)) for s in sentences]
    df = Counter(w for b in bags for w in b)
    idf = {w: math.log((1 + len(bags)) / (1 + n)) + 1 for w, n in df.items()}

    def vec(bag):
        return {w: c * idf.get(w, math.log(1 + len(bags)) + 1) for w, c in bag.items()}

    def cos(a, b):
        dot = sum(v * b.get(w, 0.0) for w, v in a.items())
        na, nb = math.sqrt(sum(v * v for v in a.values())), math.sqrt(sum(v * v for v in b.values()))
        return dot / (na * nb) if na and nb else 0.0

    q = vec(Counter(_words(text)))
    return [cos(q, vec(b)) for b in bags]


_ENCODERS: dict = {}


@torch.no_grad()
def _hf_embed(texts: list[str], name: str) -> torch.Tensor:
    from transformers import AutoModel, AutoTokenizer

    from reprolab import hub

    if name not in _ENCODERS:
        instead = "use steering.encoder=lexical (offline), or fetch the encoder into the HF cache."
        _ENCODERS[name] = (hub.from_pretrained(AutoTokenizer, name, "tokenizer", instead=instead),
                           hub.from_pretrained(AutoModel, name, "model", instead=instead).eval())
    tok, model = _ENCODERS[name]
    batch = tok(texts, padding=True, truncation=True, return_tensors="pt")
    states = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    return (states * mask).sum(1) / mask.sum(1)
