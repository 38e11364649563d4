"""Tokenizers: byte-level and char-level work offline with no files; an HF id at paper scale."""
from __future__ import annotations


class ByteTokenizer:
    """UTF-8 bytes as tokens (vocab 256)."""

    vocab_size = 256
    pad_id = None
    eos_id = None

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


class CharTokenizer:
    """One token per distinct character of the corpus (sorted, as nanoGPT does)."""

    pad_id = None
    eos_id = None

    def __init__(self, text: str):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}
        self.vocab_size = len(self.chars)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.index[c] for c in text]
        except KeyError as e:
            raise ValueError(f"character {e.args[0]!r} is not in the char vocabulary built from the corpus") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


class HFTokenizer:
    """Wraps ``transformers.AutoTokenizer`` (e.g. ``t5-base`` for the GaLore/COSMOS C4 protocol)."""

    def __init__(self, name: str, instead: str = "offline, use data.tokenizer=byte or data.tokenizer=char."):
        """``instead``: what to do when the hub and the cache lack it, in the caller's keys."""
        from transformers import AutoTokenizer

        from reprolab import hub

        self.tok = hub.from_pretrained(AutoTokenizer, name, "tokenizer", instead=instead)
        self.vocab_size = len(self.tok)
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        self.eos_id = self.tok.eos_token_id

    def encode(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=True)["input_ids"]

    def decode(self, ids) -> str:
        return self.tok.decode(list(ids))


def build_tokenizer(name: str, corpus: str | None = None, instead: str | None = None):
    """``instead``: the advice when an HF tokenizer cannot be loaded (default: the data group's keys)."""
    if name == "byte":
        return ByteTokenizer()
    if name == "char":
        if corpus is None:
            raise ValueError("data.tokenizer=char needs a text corpus to build its vocabulary")
        return CharTokenizer(corpus)
    return HFTokenizer(name) if instead is None else HFTokenizer(name, instead)
