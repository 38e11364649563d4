"""An HF dataset (hub id, or a builder such as ``text`` over local files) streamed as an LM source.

The COSMOS/GaLore C4 protocol: ``allenai/c4`` config ``en``, streaming, shuffled with seed 42,
tokenizer ``t5-base``, each document truncated and padded to ``seq_len`` (+1 for the shifted
label), pad positions ignored in the loss (-100). ``packing=true`` instead concatenates documents
(separated by EOS) into full windows.
"""
from __future__ import annotations

from typing import Iterator

import torch

from reprolab.data.source import Batch, Source
from reprolab.data.text import DataFileError, resolve_data_file
from reprolab.data.tokenizers import build_tokenizer


class HFSource(Source):
    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        self.tokenizer = build_tokenizer(cfg.tokenizer)
        self.vocab_size = self.tokenizer.vocab_size
        self.files: dict[str, list[str]] = {}  # split -> the local files it reads (data_files), for messages

    def _where(self, split: str) -> str:
        files = self.files.get(split)
        return ", ".join(files) if files else f"{self.cfg.hf_path} ({self.cfg.hf_name}), split {split!r}"

    def _stream(self, split: str):
        from reprolab import hub

        files = None
        if self.cfg.data_files:
            files = {k: [str(resolve_data_file(self.cfg.data_dir, f)) for f in v] for k, v in self.cfg.data_files.items()}
            self.files = files
        return hub.load_dataset(self.cfg.hf_path, self.cfg.hf_name, split=split, data_files=files, streaming=True,
                                instead="use data=markov, data=tinyshakespeare or a local file (data=hf_text "
                                "data.data_files=...).")

    def _examples(self, ds, split: str):
        """The stream's examples; a local file that is not UTF-8 text is named (datasets raises a bare
        UnicodeDecodeError)."""
        try:
            yield from ds
        except UnicodeDecodeError as e:
            raise DataFileError(
                f"the {split} data ({self._where(split)}) is not UTF-8 text (byte {e.start} of a file: {e.reason}); the "
                "text builder reads plain text files. Point data.data_files at text files, or convert them "
                "(e.g. iconv -f latin1 -t utf-8)."
            ) from None

    def _rows(self, ds, split: str) -> Iterator[torch.Tensor]:
        """Token rows of length seq_len + 1 (pad = -100 marker handled in `_batch`)."""
        T = self.cfg.seq_len + 1
        ds = self._examples(ds, split)
        if self.cfg.packing:
            buf: list[int] = []
            for ex in ds:
                buf += self.tokenizer.encode(ex[self.cfg.text_field])
                if self.tokenizer.eos_id is not None:
                    buf.append(self.tokenizer.eos_id)
                while len(buf) >= T:
                    yield torch.tensor(buf[:T]), torch.ones(T, dtype=torch.bool)
                    buf = buf[T:]
        else:
            pad = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
            for ex in ds:
                ids = self.tokenizer.encode(ex[self.cfg.text_field])[:T]
                if len(ids) < 2:
                    continue
                mask = torch.zeros(T, dtype=torch.bool)
                mask[: len(ids)] = True
                yield torch.tensor(ids + [pad] * (T - len(ids))), mask

    def _batches(self, rows) -> Iterator[Batch]:
        chunk = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == self.cfg.batch_size:
                yield self._batch(chunk)
                chunk = []
        if chunk:
            yield self._batch(chunk)

    @staticmethod
    def _batch(chunk) -> Batch:
        tokens = torch.stack([t for t, _ in chunk])
        mask = torch.stack([m for _, m in chunk])
        labels = tokens[:, 1:].masked_fill(~mask[:, 1:], -100)
        return {"input_ids": tokens[:, :-1].contiguous(), "labels": labels.contiguous(),
                "attention_mask": mask[:, :-1].long().contiguous()}

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        from datasets.distributed import split_dataset_by_node

        ds = self._stream(self.cfg.train_split)
        if self.cfg.shuffle_buffer > 0:
            ds = ds.shuffle(seed=self.cfg.shuffle_seed, buffer_size=self.cfg.shuffle_buffer)
        if world_size > 1:
            ds = split_dataset_by_node(ds, rank=rank, world_size=world_size)
        epoch = 0
        skip = start  # resume: drop the batches an uninterrupted run already consumed
        while True:  # loop over epochs of a finite stream
            ds.set_epoch(epoch)
            full = 0
            for b in self._batches(self._rows(ds, self.cfg.train_split)):
                if b["input_ids"].shape[0] < self.cfg.batch_size:
                    break  # drop the ragged last batch of an epoch
                full += 1
                if skip > 0:
                    skip -= 1
                    continue
                yield b
            if full == 0:  # an empty stream would loop over its epochs forever
                raise self._too_small(self.cfg.train_split, f"one full batch of data.batch_size={self.cfg.batch_size}")
            epoch += 1

    def _too_small(self, split: str, need: str) -> DataFileError:
        what = f"window of data.seq_len+1={self.cfg.seq_len + 1} tokens" if self.cfg.packing else "text of 2+ tokens"
        return DataFileError(
            f"the {split} data ({self._where(split)}) gives not even {need} (each a {what}): empty or too short. "
            "Point data.data_files at the real files, or lower data.batch_size / data.seq_len."
        )

    def val_batches(self) -> list[Batch]:
        ds = self._stream(self.cfg.val_split)
        rows, n = [], self.cfg.val_sequences
        for row in self._rows(ds, self.cfg.val_split):
            rows.append(row)
            if len(rows) >= n:
                break
        if not rows:
            raise self._too_small(self.cfg.val_split, "one validation sequence")
        return list(self._batches(rows))
