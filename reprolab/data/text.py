"""Local text files (e.g. ../shared/data/lm/tinyshakespeare.txt) as an LM source."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch

from reprolab.checks import DataFileNotFoundError, UserError
from reprolab.data.source import Batch, Source, batch_generator, lm_batch
from reprolab.data.tokenizers import build_tokenizer


def resolve_data_file(data_dir: str, name: str) -> Path:
    """``name`` under ``data_dir`` (or absolute); a missing file says how to point at the data."""
    path = Path(name) if Path(name).is_absolute() else Path(data_dir) / name
    if not path.is_file():
        raise DataFileNotFoundError(
            f"data file not found: {path}\n"
            f"  (paths.data_dir={data_dir!r}). Point it at the folder that holds {name!r}, e.g.\n"
            f"  python run.py paths.data_dir=/path/to/shared/data   or   export REPROLAB_DATA_DIR=/path/to/shared/data"
        )
    return path


class DataFileError(UserError, ValueError):
    """A data file exists but cannot serve: empty, not UTF-8 text, or too short for data.seq_len."""


def read_text_file(path: Path) -> str:
    """The UTF-8 text of a data file; an empty or a binary file is an error naming it and the fix."""
    raw = path.read_bytes()
    if not raw.strip():
        raise DataFileError(
            f"data file {path} is empty ({len(raw)} bytes): it holds no text to train on. Fetch it again (the "
            "shared data folder's SOURCES.md says where from) or point data.train_files / paths.data_dir at the real file."
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataFileError(
            f"data file {path} is not UTF-8 text (byte {e.start}: {e.reason}); data=text reads plain text files. "
            "Point data.train_files at a text file, or convert this one (e.g. iconv -f latin1 -t utf-8)."
        ) from None


class TextSource(Source):
    """Train on random windows of the train split; evaluate on consecutive windows of the val split.

    With no ``val_files``, the last ``val_fraction`` of the tokens is the validation split (the
    nanoGPT convention for Tiny Shakespeare).
    """

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        train_files = [resolve_data_file(cfg.data_dir, f) for f in cfg.train_files]
        val_files = [resolve_data_file(cfg.data_dir, f) for f in cfg.val_files]
        train_text = "".join(read_text_file(f) for f in train_files)
        val_text = "".join(read_text_file(f) for f in val_files)
        self.files = {"train": train_files, "validation": val_files or train_files}
        self.tokenizer = build_tokenizer(cfg.tokenizer, corpus=train_text + val_text)
        self.vocab_size = self.tokenizer.vocab_size
        train = torch.tensor(self.tokenizer.encode(train_text), dtype=torch.long)
        if cfg.val_files:
            self.train, self.val = train, torch.tensor(self.tokenizer.encode(val_text), dtype=torch.long)
        else:
            cut = int(len(train) * (1 - cfg.val_fraction))
            self.train, self.val = train[:cut], train[cut:]
        if len(self.train) <= cfg.seq_len + 1:
            raise self._too_short("train", len(self.train))

    def _too_short(self, split: str, tokens: int) -> DataFileError:
        names = ", ".join(str(f) for f in self.files[split])
        held_out = "" if self.cfg.val_files or split == "train" else f", the last data.val_fraction={self.cfg.val_fraction} of it"
        return DataFileError(
            f"{split} split ({names}{held_out}) has {tokens} tokens, fewer than data.seq_len+1={self.cfg.seq_len + 1}: "
            f"use data.seq_len={max(tokens - 2, 1)} or less, or a longer file"
            + ("" if self.cfg.val_files or split == "train" else " or a larger data.val_fraction") + "."
        )

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        T, i = self.cfg.seq_len + 1, start
        while True:
            gen = batch_generator(self.seed, i, rank)
            offsets = torch.randint(0, len(self.train) - T + 1, (self.cfg.batch_size,), generator=gen)
            yield lm_batch(self.train[offsets[:, None] + torch.arange(T)])
            i += 1

    def val_batches(self) -> list[Batch]:
        T = self.cfg.seq_len + 1
        n = (len(self.val) - 1) // self.cfg.seq_len
        if self.cfg.val_sequences > 0:
            n = min(n, self.cfg.val_sequences)
        if n == 0:
            raise self._too_short("validation", len(self.val))
        # Consecutive windows sharing one boundary token, so every val token is a label once.
        rows = torch.stack([self.val[j * self.cfg.seq_len : j * self.cfg.seq_len + T] for j in range(n)])
        return [lm_batch(b) for b in rows.split(self.cfg.batch_size)]
