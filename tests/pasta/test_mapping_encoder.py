"""Stage 2 with an HF sentence encoder (`methods.autopasta.mapping`, ``steering.encoder=<HF id or folder>``),
offline: a tiny random BERT built from its config and a word-level tokenizer built here, saved to a folder
that the mapping loads as it would load ``sentence-transformers/all-MiniLM-L6-v2`` from the HF cache."""
from __future__ import annotations

import pytest
import torch

from methods.autopasta import map_to_sentences
from methods.autopasta.mapping import _ENCODERS, similarities

SENTENCES = ["paris is the capital of france", "the seine flows through paris", "rome is the capital of italy",
             "a cat sat on the mat"]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A folder holding a tiny random BERT (2 layers, d 32) and its word-level tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = sorted({w for s in SENTENCES for w in s.split()} | {"zebra", "quantum"})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=64, max_position_embeddings=32)).eval()
    folder = tmp_path_factory.mktemp("tiny_encoder")
    fast.save_pretrained(folder)
    model.save_pretrained(folder)
    yield str(folder), fast, model
    _ENCODERS.pop(str(folder), None)


def _embed_one(fast, model, text: str) -> torch.Tensor:
    """The reference: one text alone (no padding), mean of its token states."""
    batch = fast([text], return_tensors="pt")
    with torch.no_grad():
        return model(**batch).last_hidden_state[0].mean(0)


def test_hf_encoder_picks_the_sentence_with_the_nearest_embedding(encoder):
    """The similarities are the cosines of mean-pooled states, computed here one text at a time (so batch
    padding must not change them), and the mapped sentence is their argmax."""
    folder, fast, model = encoder
    text = "the capital of italy"
    ref = [float(torch.nn.functional.cosine_similarity(_embed_one(fast, model, text), _embed_one(fast, model, s), 0))
           for s in SENTENCES]
    assert similarities(text, SENTENCES, folder) == pytest.approx(ref, abs=1e-5)
    best = max(range(len(SENTENCES)), key=lambda i: ref[i])
    assert map_to_sentences(text, SENTENCES, encoder=folder, min_similarity=-1.0) == [best]
    top2 = sorted(sorted(range(len(SENTENCES)), key=lambda i: -ref[i])[:2])
    assert map_to_sentences(text, SENTENCES, top_m=2, encoder=folder, min_similarity=-1.0) == top2


def test_hf_encoder_agrees_with_tfidf_on_a_verbatim_key_sentence(encoder):
    """A verbatim sentence has cosine 1 with itself under any encoder: the HF path and TF-IDF pick it."""
    folder, _, _ = encoder
    for i, s in enumerate(SENTENCES):
        sims = similarities(s, SENTENCES, folder)
        assert sims[i] == pytest.approx(1.0, abs=1e-5)
        assert map_to_sentences(s, SENTENCES, encoder=folder) == map_to_sentences(s, SENTENCES) == [i]
