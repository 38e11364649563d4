"""DFT's data sources: positives (prompt + its good answer) with negatives from the base model.

Every source keeps its training prompts as token lists (``train``: prompt, answer, the generation
prompt of its negatives) and its validation rows; `prepare(model)` (called by the runner with the
initial model, before training) loads or makes the negatives (`methods.dft.negatives`). Training
batches are a pure function of their index (a resumed run sees the same ones): epoch e visits every
prompt once in a permutation seeded by (seed, e), B prompts per step per process, and serves each
prompt's negatives of epoch e (spec §2.4, §6 property 9). ``prompt_id`` is the prompt's stable index
(DFT's per-prompt estimator is indexed by it).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import torch

from reprolab.checks import ConfigError, DataFileNotFoundError
from reprolab.data.source import Batch, Source, batch_generator, lm_batch


@dataclass
class Example:
    prompt: list[int]        # the training prompt's tokens
    answer: list[int]        # the positive answer's tokens
    gen_prompt: list[int]    # the prompt the negatives are sampled from (the training prompt + a system message)
    distractor: Optional[list[int]] = None  # a known bad answer (validation)


def padded(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict:
    """(prompt, answer) token lists -> right-padded ``input_ids``, ``labels`` (pre-shifted, -100 on the prompt
    and the padding) and ``attention_mask``, each ``(len(rows), T)``."""
    t = max(len(p) + len(a) for p, a in rows) - 1
    ids = torch.full((len(rows), t), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), t), -100, dtype=torch.long)
    mask = torch.zeros(len(rows), t, dtype=torch.long)
    for r, (p, a) in enumerate(rows):
        seq = torch.tensor(p + a)
        n = len(seq) - 1
        ids[r, :n], mask[r, :n] = seq[:-1], 1
        labels[r, len(p) - 1 : n] = seq[len(p):]
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def named(prefix: str, rows: dict, shape: Optional[tuple] = None) -> dict:
    return {f"{prefix}_{k}": (v if shape is None else v.reshape(*shape, v.shape[-1])) for k, v in rows.items()}


class PositivesSource(Source):
    """Base of the DFT sources; a subclass fills ``train``, ``val``, ``vocab_size``, ``pad_id``, ``eos_id``,
    ``tokenizer_id`` and writes `negative_answer` (generated tokens -> answer tokens)."""

    train: list[Example]
    val: list[Example]
    pad_id: int = 0
    eos_id: Optional[int] = None
    tokenizer_id: str = ""

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        self.kind = cfg.kind
        self.negatives = None  # methods.dft.negatives.Negatives, after prepare()

    def negative_answer(self, generated: list[int], example: Example) -> list[int]:
        """The answer tokens of a generated negative of ``example`` (the toy: the tokens as sampled)."""
        return generated

    def prepare(self, model) -> None:
        from methods.dft.negatives import load_or_make

        self.negatives = load_or_make(self, model)

    # ---- the schedule ---------------------------------------------------------------------------
    def columns(self, epoch: int) -> list[int]:
        """The negative columns of an epoch: e*m .. e*m+m-1 (mod K), or 0..m-1 without fresh negatives."""
        m, k = self.cfg.negatives_per_step, self.cfg.num_negatives
        first = epoch * m if self.cfg.fresh_each_epoch else 0
        return [(first + j) % k for j in range(m)]

    def batch_rows(self, index: int, rank: int, world_size: int) -> tuple[int, np.ndarray]:
        """(epoch, prompt ids) of train batch ``index`` on ``rank``: every prompt once per epoch."""
        n, chunk = len(self.train), self.cfg.batch_size * world_size
        per_epoch = math.ceil(n / chunk)
        epoch, j = divmod(index, per_epoch)
        perm = np.random.default_rng([self.seed, epoch]).permutation(n)
        return epoch, np.array_split(perm[j * chunk : (j + 1) * chunk], world_size)[rank]

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        if self.negatives is None:
            raise RuntimeError("the DFT data source has no negatives yet: call source.prepare(model) with the base "
                               "model first (the lm runner does).")
        i = start
        while True:
            epoch, ids = self.batch_rows(i, rank, world_size)
            yield self.batch(ids.tolist(), self.columns(epoch), epoch)
            i += 1

    def batch(self, ids: list[int], cols: list[int], epoch: int) -> Batch:
        ex = [self.train[i] for i in ids]
        negs = [[self.negatives.answers[i][c] for c in cols] for i in ids]
        out = {"prompt_id": torch.tensor(ids, dtype=torch.long), "epoch": torch.full((len(ids),), epoch)}
        if self.kind == "preference":  # chosen = the positive, rejected = the epoch's first negative
            rows = padded([(e.prompt, e.answer) for e in ex] + [(e.prompt, n[0]) for e, n in zip(ex, negs)], self.pad_id)
            b = len(ids)
            out.update(named("chosen", {k: v[:b] for k, v in rows.items()}))
            out.update(named("rejected", {k: v[b:] for k, v in rows.items()}))
            out["pair_id"] = out["prompt_id"]
            return out
        m = len(cols)
        rows = padded([(e.prompt, e.answer) for e in ex] + [(e.prompt, a) for e, n in zip(ex, negs) for a in n],
                      self.pad_id)
        b = len(ids)
        out.update(named("pos", {k: v[:b] for k, v in rows.items()}))
        out.update(named("neg", {k: v[b:] for k, v in rows.items()}, (b, m)))
        out["neg_ref_logps"] = self.negatives.ref_logps[ids][:, cols]
        return out

    def val_batches(self) -> list[Batch]:
        bs = max(self.cfg.batch_size, 64)
        out = []
        for s in range(0, len(self.val), bs):
            ex = self.val[s : s + bs]
            has_d = all(e.distractor is not None for e in ex)
            second = [(e.prompt, e.distractor) for e in ex] if has_d else []
            rows = padded([(e.prompt, e.answer) for e in ex] + second, self.pad_id)
            b = len(ex)
            if self.kind == "preference":
                if not has_d:
                    raise ConfigError("the pairwise view of DFT data validates on (chosen, rejected) pairs, and the "
                                      "validation rows have no rejected answer: set data.rejected_field.")
                batch = {**named("chosen", {k: v[:b] for k, v in rows.items()}),
                         **named("rejected", {k: v[b:] for k, v in rows.items()})}
            else:
                batch = named("pos", {k: v[:b] for k, v in rows.items()})
                if has_d:
                    batch.update(named("distractor", {k: v[b:] for k, v in rows.items()}))
            out.append(batch)
        return out


# ---- the distractor-habit toy (spec §5.1) --------------------------------------------------------
SEP = 8
TOY_PROMPTS = [(a, b, c) for a in range(8) for b in range(8) for c in range(8)]


def toy_correct(a: int, b: int, c: int) -> list[int]:
    return [(a + b) % 8, (b + c) % 8, (a + c) % 8, (a + b + c) % 8]


def toy_distractor(a: int, b: int, c: int) -> list[int]:
    return [(a + b) % 8, (b + c) % 8, (a - c) % 8, (a * b) % 8]


def toy_split(n_train: int, split_seed: int) -> tuple[list[int], list[int]]:
    perm = np.random.default_rng(split_seed).permutation(len(TOY_PROMPTS))
    return sorted(perm[:n_train].tolist()), sorted(perm[n_train:].tolist())


class ToySource(PositivesSource):
    vocab_size = 9
    tokenizer_id = "dft-toy-v9"

    def __init__(self, cfg, seed: int):
        super().__init__(cfg, seed)
        train, held_out = toy_split(cfg.n_train, cfg.split_seed)

        def example(i):
            p = TOY_PROMPTS[i]
            return Example([*p, SEP], toy_correct(*p), [*p, SEP], toy_distractor(*p))

        self.train = [example(i) for i in train]
        self.val = [example(i) for i in held_out]


class ToyBaseSource(Source):
    """The toy's pretraining data: answers y* with probability p_correct, else the distractor."""

    kind = "tokens"
    vocab_size = 9

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed

    @staticmethod
    def rows(prompts: list[tuple], correct: torch.Tensor) -> Batch:
        seqs = torch.tensor([[*p, SEP, *(toy_correct(*p) if ok else toy_distractor(*p))]
                             for p, ok in zip(prompts, correct.tolist())])
        batch = lm_batch(seqs)
        batch["labels"][:, :3] = -100  # score the answer only
        return batch

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        i = start
        while True:
            g = batch_generator(self.seed, i, rank)
            idx = torch.randint(0, len(TOY_PROMPTS), (self.cfg.batch_size,), generator=g)
            ok = torch.rand(self.cfg.batch_size, generator=g) < self.cfg.p_correct
            yield self.rows([TOY_PROMPTS[j] for j in idx.tolist()], ok)
            i += 1

    def val_batches(self) -> list[Batch]:
        return [self.rows(TOY_PROMPTS[s : s + 128], torch.ones(128, dtype=torch.bool)) for s in range(0, 512, 128)]


# ---- prompts and answers from a JSON-lines file (UltraFeedback, MetaMathQA) ----------------------
ZEPHYR = "<|system|>\n{system}</s>\n<|user|>\n{prompt}</s>\n<|assistant|>\n"
ZEPHYR_NO_SYSTEM = "<|user|>\n{prompt}</s>\n<|assistant|>\n"
ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the request."
          "\n\n### Instruction:\n{prompt}\n\n### Response:")


def text_of(value) -> str:
    """A field's text: a string, or a conversation (HF ``messages`` lists, e.g. H4 UltraFeedback's ``chosen``):
    the content of its last assistant turn."""
    if isinstance(value, str):
        return value
    turns = [m["content"] for m in value if isinstance(m, dict) and m.get("role") == "assistant"]
    if not turns:
        raise ConfigError(f"a conversation field has no assistant turn ({str(value)[:80]}...): point data.answer_field "
                          "to the answers.")
    return turns[-1]


def read_jsonl(path: Path, fields: list[str], limit: Optional[int]) -> list[dict]:
    if not path.is_file():
        raise DataFileNotFoundError(f"{path} does not exist: set data.data_dir (paths.data_dir) to the folder with the "
                                    "data (../shared/data), or data.train_file / data.val_file.")
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            row = json.loads(line)
            missing = [k for k in fields if k not in row]
            if missing:
                raise ConfigError(f"{path} line {n} has no field {missing[0]!r} (fields: {sorted(row)}): set "
                                  "data.prompt_field / data.answer_field / data.rejected_field to its names.")
            rows.append(row)
    return rows


class TextSource(PositivesSource):
    """Chat-formatted prompts (spec §2.4-2.5): the answer span is ``{y}</s>\\n`` + eos (zephyr) or ``{y}`` +
    eos (alpaca), negatives re-wrapped the same way after the generated text is cut at its first ``</s>``
    and left-stripped (as the official generator stores them)."""

    def __init__(self, cfg, seed: int):
        from reprolab.data.tokenizers import build_tokenizer

        super().__init__(cfg, seed)
        self.tok = build_tokenizer(cfg.tokenizer)
        self.vocab_size = self.tok.vocab_size
        self.eos_id = self.tok.eos_id
        self.pad_id = self.tok.pad_id if self.tok.pad_id is not None else 0
        self.tokenizer_id = f"{cfg.tokenizer}:{self.vocab_size}"
        root = Path(cfg.data_dir)
        fields = [cfg.prompt_field, cfg.answer_field]
        self.train = [self.example(r, None) for r in read_jsonl(root / cfg.train_file, fields, cfg.n_train)]
        self.val = []
        if cfg.val_file:
            rej = [cfg.rejected_field] if cfg.rejected_field else []
            self.val = [self.example(r, r[cfg.rejected_field] if rej else None)
                        for r in read_jsonl(root / cfg.val_file, fields + rej, cfg.n_val)]

    def _encode(self, text: str, first: bool) -> list[int]:
        hf = getattr(self.tok, "tok", None)
        if hf is None:
            return self.tok.encode(text)
        return hf(text, add_special_tokens=first)["input_ids"]

    def prompt_tokens(self, prompt: str, system: Optional[str]) -> list[int]:
        if self.cfg.template == "alpaca":
            text = ALPACA.format(prompt=prompt)
        else:
            text = ZEPHYR.format(system=system, prompt=prompt) if system else ZEPHYR_NO_SYSTEM.format(prompt=prompt)
        ids = self._encode(text, first=True)
        return ids[-self.cfg.max_prompt_length:]  # the official truncation keeps the prompt's end

    def answer_tokens(self, text: str, prompt_len: int) -> list[int]:
        body = f"{text}</s>\n" if self.cfg.template == "zephyr" else text
        ids = self._encode(body, first=False) + ([self.eos_id] if self.eos_id is not None else [])
        return ids[: self.cfg.max_length - prompt_len]

    def example(self, row: dict, distractor) -> Example:
        prompt = self.prompt_tokens(row[self.cfg.prompt_field], None)
        system = self.cfg.system_prompt if self.cfg.template == "zephyr" else None
        gen = self.prompt_tokens(row[self.cfg.prompt_field], system)
        d = None if distractor is None else self.answer_tokens(text_of(distractor), len(prompt))
        answer = self.answer_tokens(text_of(row[self.cfg.answer_field]), len(prompt))
        if not answer:
            raise ConfigError(f"a prompt of {self.cfg.train_file} has no answer tokens after masking (an empty "
                              f"{self.cfg.answer_field!r}, or the prompt took data.max_length={self.cfg.max_length}): drop "
                              "the row, or raise data.max_length / lower data.max_prompt_length.")
        return Example(prompt, answer, gen, d)

    def negative_answer(self, generated: list[int], example: Example) -> list[int]:
        text = self.tok.decode([t for t in generated if t != self.eos_id]).split("</s>")[0].lstrip()
        return self.answer_tokens(text, len(example.prompt))
