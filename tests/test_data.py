"""LM data sources: the Markov entropy floor is exact, batches are a pure function of their index."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from reprolab.data.config import HFData, MarkovData, TextData
from reprolab.data.markov import MarkovChain
from reprolab.data.tokenizers import ByteTokenizer, CharTokenizer
from reprolab.hub import HubUnavailableError
from tests.conftest import SHARED_DATA, needs_shared_data


def brute_force_floor(chain: MarkovChain, seq_len: int) -> float:
    """Optimal mean loss by enumerating every sequence of seq_len + 1 tokens (an independent check)."""
    V, k, n = chain.V, chain.k, seq_len + 1
    prob = {}
    for seq in itertools.product(range(V), repeat=n):
        c = 0
        for t in seq[:k]:
            c = c * V + t
        p = chain.pi[c]
        for t in range(k, n):
            row = list(chain.next_tok[c])
            p *= chain.next_prob[c][row.index(seq[t])] if seq[t] in row else 0.0
            c = (c % (V ** (k - 1))) * V + seq[t]
        prob[seq] = p

    def joint_entropy(m):  # entropy of the first m tokens
        marg = {}
        for s, p in prob.items():
            marg[s[:m]] = marg.get(s[:m], 0.0) + p
        return -sum(p * math.log(p) for p in marg.values() if p > 0)

    H = [joint_entropy(m) for m in range(n + 1)]
    return sum(H[j + 1] - H[j] for j in range(1, n)) / seq_len


@pytest.mark.parametrize("V, k, s, T", [(3, 1, 2, 4), (3, 2, 2, 3), (4, 2, 3, 3)])
def test_markov_floor_matches_brute_force_enumeration(V, k, s, T):
    chain = MarkovChain(V, k, s, concentration=0.7, seed=V * 10 + k)
    assert chain.floor(T) == pytest.approx(brute_force_floor(chain, T), abs=1e-10)


def test_markov_samples_have_the_entropy_rate_and_stationary_start():
    chain = MarkovChain(16, 2, 4, 1.0, seed=3)
    x = chain.sample(4000, 12, torch.Generator().manual_seed(0)).numpy()
    ctx = x[:, 0] * 16 + x[:, 1]
    nll = []
    for t in range(2, 12):
        rows = chain.next_tok[ctx]
        pick = (rows == x[:, t : t + 1]).argmax(1)
        assert (rows[np.arange(len(x)), pick] == x[:, t]).all(), "sampled a token outside the support"
        nll.append(-np.log(chain.next_prob[ctx, pick]))
        ctx = (ctx % 16) * 16 + x[:, t]
    nll = np.concatenate(nll)
    assert abs(nll.mean() - chain.entropy_rate) < 4 * nll.std() / math.sqrt(len(nll))
    # the first context is drawn from the stationary distribution
    emp = np.bincount(x[:, 0] * 16 + x[:, 1], minlength=256) / len(x)
    assert np.abs(emp - chain.pi).sum() < 0.25


def test_markov_train_batches_are_a_function_of_index_and_rank():
    src = MarkovData(seq_len=16, batch_size=4, val_sequences=8, vocab_size=32).build(seed=7)
    first = list(itertools.islice(src.train_batches(0, 0, 1), 5))
    resumed = next(src.train_batches(3, 0, 1))
    assert torch.equal(first[3]["input_ids"], resumed["input_ids"])
    assert not torch.equal(first[0]["input_ids"], first[1]["input_ids"])
    other_rank = next(src.train_batches(0, 1, 2))
    assert not torch.equal(first[0]["input_ids"], other_rank["input_ids"])
    b = first[0]
    assert b["input_ids"].shape == (4, 16) and torch.equal(b["input_ids"][:, 1:], b["labels"][:, :-1])
    # the validation set does not depend on the run's seed
    other_seed = MarkovData(seq_len=16, batch_size=4, val_sequences=8, vocab_size=32).build(seed=8)
    assert torch.equal(src.val_batches()[0]["labels"], other_seed.val_batches()[0]["labels"])


def test_tokenizers_round_trip():
    text = "Hello, wörld!\n"
    assert ByteTokenizer().decode(ByteTokenizer().encode(text)) == text
    tok = CharTokenizer(text)
    assert tok.vocab_size == len(set(text)) and tok.decode(tok.encode(text)) == text
    with pytest.raises(ValueError, match="not in the char vocabulary"):
        tok.encode("z")


def test_missing_data_file_names_the_path_and_the_fix(tmp_path):
    data = TextData(data_dir=str(tmp_path), train_files=["lm/nope.txt"])
    with pytest.raises(FileNotFoundError) as e:
        data.build(seed=0)
    assert str(tmp_path / "lm/nope.txt") in str(e.value) and "paths.data_dir" in str(e.value)


def test_text_source_windows_and_validation_split(tmp_path):
    (tmp_path / "a.txt").write_text("abcdefghij" * 50)
    src = TextData(data_dir=str(tmp_path), train_files=["a.txt"], seq_len=8, batch_size=3, val_sequences=100,
                   val_fraction=0.2).build(seed=0)
    assert src.vocab_size == 10 and len(src.val) == 100 and len(src.train) == 400
    val = torch.cat([b["labels"] for b in src.val_batches()])
    assert val.numel() == 8 * ((100 - 1) // 8)  # consecutive windows: every label once
    b = next(src.train_batches(0, 0, 1))
    assert ((b["labels"] - b["input_ids"]) % 10 == 1).all()  # the text is periodic: next char is +1


def test_hf_source_over_local_files_pads_packs_and_resumes(tmp_path):
    """The `datasets` path, offline, through the `text` builder."""
    (tmp_path / "train.txt").write_text("\n".join(f"line number {i} " + "x" * (i % 7) for i in range(200)))
    (tmp_path / "val.txt").write_text("\n".join(f"held out {i}" for i in range(50)))
    files = {"train": ["train.txt"], "validation": ["val.txt"]}
    padded = HFData(hf_path="text", hf_name=None, data_dir=str(tmp_path), data_files=files, tokenizer="byte",
                    seq_len=32, batch_size=4, val_sequences=8, shuffle_buffer=0).build(seed=0)
    b = next(padded.train_batches(0, 0, 1))
    assert b["input_ids"].shape == (4, 32)
    n_real = len("line number 0 ")
    assert (b["labels"][0, n_real - 1 :] == -100).all() and (b["labels"][0, : n_real - 1] != -100).all()
    stream = padded.train_batches(0, 0, 1)
    third = [next(stream) for _ in range(3)][2]
    assert torch.equal(next(padded.train_batches(2, 0, 1))["input_ids"], third["input_ids"])
    packed = HFData(hf_path="text", hf_name=None, data_dir=str(tmp_path), data_files=files, tokenizer="byte",
                    seq_len=32, batch_size=4, val_sequences=8, packing=True, shuffle_buffer=0).build(seed=0)
    assert (next(packed.train_batches(0, 0, 1))["labels"] != -100).all()
    assert sum(v["input_ids"].shape[0] for v in packed.val_batches()) == 8


def test_hf_source_without_network_says_what_to_use_instead(hub_offline):
    src = HFData(hf_path="definitely/not-a-local-dataset", hf_name=None, tokenizer="byte").build(seed=0)
    with pytest.raises(HubUnavailableError, match="not-a-local-dataset.* cannot be reached.*use data=markov"):
        src.val_batches()


@needs_shared_data
def test_tinyshakespeare_char_level():
    src = TextData(data_dir=str(SHARED_DATA), train_files=["lm/tinyshakespeare.txt"], tokenizer="char",
                   seq_len=64, batch_size=2).build(seed=0)
    assert src.vocab_size == 65
    assert len(src.train) + len(src.val) == 1_115_394


# ---- data errors name the file and the fix (issue 13, item 7) -----------------------------------
@pytest.mark.parametrize("content, message", [
    (b"", r"is empty \(0 bytes\).*data.train_files"),
    (b"\n  \n", r"is empty \(4 bytes\)"),
    (b"text then \x89PNG\x00\xff binary", r"is not UTF-8 text \(byte 10: invalid start byte\).*iconv"),
])
def test_an_empty_or_binary_text_file_is_named_with_the_fix(tmp_path, content, message):
    from reprolab.data.text import DataFileError

    (tmp_path / "lm").mkdir()
    (tmp_path / "lm" / "tinyshakespeare.txt").write_bytes(content)
    with pytest.raises(DataFileError, match=message) as e:
        TextData(data_dir=str(tmp_path), train_files=["lm/tinyshakespeare.txt"]).build(seed=0)
    assert str(tmp_path / "lm" / "tinyshakespeare.txt") in str(e.value)


@pytest.mark.parametrize("text, kw, message", [
    ("abc" * 10, {}, r"train split \(.*short.txt\) has 27 tokens, fewer than data.seq_len\+1=65: use data.seq_len=25"),
    ("abcdefghij" * 20, {"val_fraction": 0.05},
     r"validation split \(.*short.txt, the last data.val_fraction=0.05 of it\) has 10 tokens.*larger data.val_fraction"),
])
def test_a_split_too_short_for_seq_len_names_the_file_and_the_fix(tmp_path, text, kw, message):
    (tmp_path / "short.txt").write_text(text)
    with pytest.raises(ValueError, match=message):
        TextData(data_dir=str(tmp_path), train_files=["short.txt"], **kw).build(seed=0).val_batches()


@pytest.fixture
def no_hang():
    """Turns a hang (an empty stream looped over forever) into a failure."""
    import signal

    def hung(*_):
        raise TimeoutError("the source hung")

    before = signal.signal(signal.SIGALRM, hung)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, before)


@pytest.mark.parametrize("train, message", [
    (b"", r"the train data \(.*train.txt\) gives not even one full batch of data.batch_size=2"),
    (b"fine line\nthen \x89\xff\x00 binary\n", r"the train data \(.*train.txt\) is not UTF-8 text.*iconv"),
])
def test_local_files_through_the_hf_text_builder_name_the_file(tmp_path, hub_offline, no_hang, train, message):
    (tmp_path / "train.txt").write_bytes(train)
    (tmp_path / "val.txt").write_text("some validation text\n" * 20)
    src = HFData(hf_path="text", hf_name=None, data_dir=str(tmp_path), tokenizer="byte", packing=True,
                 shuffle_buffer=0, seq_len=8, batch_size=2, val_sequences=4,
                 data_files={"train": ["train.txt"], "validation": ["val.txt"]}).build(seed=0)
    assert len(src.val_batches()) == 2
    with pytest.raises(ValueError, match=message):
        next(src.train_batches(0, 0, 1))
