"""Knowledge-editing requests: CounterFact / zsRE (the samples in ../shared/data/editing, read in place),
KnowEdit (HF ``zjunlp/KnowEdit``, paper scale), and a synthetic world of facts for CPU runs.

An `EditRequest` is what EasyEdit's editors take: a prompt, the new target, and the prompts that score
the edit: rephrasings (generalisation), unrelated (prompt, answer) pairs whose predictions must not
move (locality) and one-hop (prompt, answer) pairs that should follow the edit (portability).
Formats: ../shared/data/SOURCES.md §6.

`FactWorld` is the world of RoseLoRA's CPU analog (../shared/papers/roselora.md §5.1): subjects ×
relations, each fact an object drawn at random; two templates, ``s r is o`` and ``the r of s is o``
(the paraphrase); every name is one word of a `WordTokenizer`, so every target is one token.
`FactsSource` pretrains a model on them with the lm runner (``data=facts``): labels on the object only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

import torch

from reprolab.data.source import Batch, Source, batch_generator

Pair = tuple[str, str]  # (prompt, answer)


@dataclass(frozen=True)
class EditRequest:
    prompt: str
    target_new: str
    ground_truth: str | None = None
    rephrase: tuple[str, ...] = ()
    locality: tuple[Pair, ...] = ()
    portability: tuple[Pair, ...] = ()


# ---- real data -----------------------------------------------------------------------------------------
def counterfact(path, limit: int | None = None) -> list[EditRequest]:
    """The flattened MEND/EasyEdit CounterFact (``counterfact_edit_*.json``): one rephrase, one neighbour."""
    return [EditRequest(prompt=r["prompt"], target_new=r["target_new"], ground_truth=r.get("ground_truth"),
                        rephrase=(r["rephrase_prompt"],),
                        locality=((r["locality_prompt"], r["locality_ground_truth"]),))
            for r in _records(path, limit)]


def zsre(path, limit: int | None = None) -> list[EditRequest]:
    """zsRE in the MEND form (``zsre_mend_*.json``): src question, alt target, rephrase, an NQ locality pair."""
    return [EditRequest(prompt=r["src"], target_new=r["alt"], ground_truth=(r.get("answers") or [None])[0],
                        rephrase=(r["rephrase"],), locality=((r["loc"], r["loc_ans"]),))
            for r in _records(path, limit)]


def knowedit(records: list[dict], limit: int | None = None) -> list[EditRequest]:
    """KnowEdit's JSON (EasyEdit's ``KnowEditDataset`` reads the same keys): ``prompt``, ``target_new``,
    ``ground_truth``, ``rephrase`` / ``rephrase_prompt`` (absent from WikiBio and WikiData_counterfact), and
    ``locality`` / ``portability`` as {kind: [{prompt, ground_truth}]}, a ground truth possibly a nested list
    of aliases (the first is scored)."""
    def pairs(groups) -> tuple[Pair, ...]:
        out = []
        for items in (groups or {}).values():
            for it in items if isinstance(items, list) else [items]:
                answer = it["ground_truth"]
                while isinstance(answer, list):
                    answer = answer[0]
                out.append((it["prompt"], answer))
        return tuple(out)

    out = []
    for r in records[:limit]:
        rephrase = r.get("rephrase") or r.get("rephrase_prompt")
        out.append(EditRequest(prompt=r["prompt"], target_new=r["target_new"], ground_truth=r.get("ground_truth"),
                               rephrase=tuple([rephrase] if isinstance(rephrase, str) else rephrase or ()),
                               locality=pairs(r.get("locality")), portability=pairs(r.get("portability"))))
    return out


def _records(path, limit):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data[:limit]


# ---- the synthetic world -------------------------------------------------------------------------------
class WordTokenizer:
    """One token per whitespace-separated word of a fixed vocabulary."""

    pad_id = 0
    eos_id = None

    def __init__(self, words: list[str]):
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.vocab_size = len(self.words)

    def encode(self, text: str) -> list[int]:
        try:
            return [self.index[w] for w in text.split()]
        except KeyError as e:
            raise ValueError(f"word {e.args[0]!r} is not in the fact world's vocabulary") from None

    def decode(self, ids) -> str:
        return " ".join(self.words[int(i)] for i in ids)


class FactWorld:
    """``n_subjects`` × ``n_relations`` facts, each an object of ``n_objects`` drawn from ``seed``."""

    def __init__(self, n_subjects: int = 200, n_relations: int = 10, n_objects: int = 100, seed: int = 0):
        self.S, self.R, self.O = n_subjects, n_relations, n_objects
        gen = torch.Generator().manual_seed(seed)
        self.objects = torch.randint(0, n_objects, (n_subjects, n_relations), generator=gen)  # [S, R]
        self.tokenizer = WordTokenizer(["<pad>", "<bos>", "is", "the", "of"] + [f"s{i}" for i in range(n_subjects)]
                                       + [f"r{j}" for j in range(n_relations)] + [f"o{k}" for k in range(n_objects)])

    def prompt(self, s: int, r: int, paraphrase: bool = False) -> str:
        return f"<bos> the r{r} of s{s} is" if paraphrase else f"<bos> s{s} r{r} is"

    def object(self, s: int, r: int) -> str:
        return f"o{int(self.objects[s, r])}"

    def sequences(self, paraphrase: bool) -> torch.Tensor:
        """Every fact as token ids, prompt then object: [S·R, len]."""
        rows = [self.tokenizer.encode(f"{self.prompt(s, r, paraphrase)} {self.object(s, r)}")
                for s in range(self.S) for r in range(self.R)]
        return torch.tensor(rows)

    def requests(self, n_edits: int, n_locality: int, seed: int, counterfactual: bool = True) -> list[EditRequest]:
        """``n_edits`` distinct facts, each moved to another object (``counterfactual=False``: taught its true
        object, i.e. fine-tuning on the world's own facts); the paraphrase scores generalisation, up to
        ``n_locality`` other facts sharing its subject or relation score locality (with their true objects)."""
        gen = torch.Generator().manual_seed(seed)
        picks = torch.randperm(self.S * self.R, generator=gen)[:n_edits].tolist()
        out = []
        for i in picks:
            s, r = divmod(i, self.R)
            new = (int(self.objects[s, r]) + 1 + int(torch.randint(0, self.O - 1, (1,), generator=gen))) % self.O
            new = new if counterfactual else int(self.objects[s, r])
            near = [(s2, r2) for s2 in range(self.S) for r2 in range(self.R) if (s2 == s) != (r2 == r)]
            order = torch.randperm(len(near), generator=gen)[:n_locality].tolist()
            out.append(EditRequest(prompt=self.prompt(s, r), target_new=f"o{new}", ground_truth=self.object(s, r),
                                   rephrase=(self.prompt(s, r, paraphrase=True),),
                                   locality=tuple((self.prompt(*near[j]), self.object(*near[j])) for j in order)))
        return out


class FactsSource(Source):
    """The fact world as an LM source (``data=facts``): a batch is random facts in either template, padded
    to ``data.seq_len`` + 1 tokens; only the object is labelled (the loss floor is 0)."""

    entropy_floor = 0.0

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        self.world = FactWorld(cfg.n_subjects, cfg.n_relations, cfg.n_objects, cfg.world_seed)
        self.tokenizer = self.world.tokenizer
        self.vocab_size = self.tokenizer.vocab_size
        self.main, self.para = self.world.sequences(False), self.world.sequences(True)
        if cfg.seq_len + 1 < self.para.shape[1]:
            raise ValueError(f"data.seq_len={cfg.seq_len} is too short: a fact has {self.para.shape[1]} tokens, so set "
                             f"data.seq_len >= {self.para.shape[1] - 1}.")

    def _batch(self, rows: list[torch.Tensor]) -> Batch:
        T = self.cfg.seq_len + 1
        x = torch.zeros(len(rows), T, dtype=torch.long)
        labels = torch.full((len(rows), T - 1), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            x[i, : len(row)] = row
            labels[i, len(row) - 2] = row[-1]  # the object, predicted from the last prompt token
        return {"input_ids": x[:, :-1].contiguous(), "labels": labels}

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        i = start
        n = self.main.shape[0]
        while True:
            gen = batch_generator(self.seed, i, rank)
            facts = torch.randint(0, n, (self.cfg.batch_size,), generator=gen)
            para = torch.rand(self.cfg.batch_size, generator=gen) < 0.5
            yield self._batch([(self.para if p else self.main)[f] for f, p in zip(facts.tolist(), para.tolist())])
            i += 1

    def val_batches(self) -> list[Batch]:
        """Every fact in the main template (fact accuracy = 1 − error on this set)."""
        rows = list(self.main[: self.cfg.val_sequences])
        return [self._batch(rows[i : i + self.cfg.batch_size]) for i in range(0, len(rows), self.cfg.batch_size)]
