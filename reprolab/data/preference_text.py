"""Real preference data (prompt, chosen, rejected) through `datasets`: Anthropic HH-RLHF, UltraFeedback, TL;DR.

Each row becomes a prompt and two responses (``data.format``):
- ``hh``: ``chosen`` / ``rejected`` are whole dialogues ("\\n\\nHuman: ... \\n\\nAssistant: ...") sharing every turn
  but the last reply: the prompt is their longest common prefix cut after its last "\\n\\nAssistant:", the
  responses what follows (../shared/data/SOURCES.md; TRL's prompt extraction).
- ``prompt_chosen_rejected``: ``prompt``, ``chosen``, ``rejected`` strings (the UltraFeedback sample), or lists of
  chat messages ({role, content}; trl-lib/ultrafeedback_binarized): rendered in HH's dialogue format, the
  prompt ending in "\\n\\nAssistant:" and each response the last assistant message after a space.
- ``tldr``: ``openai/summarize_from_feedback`` (config ``comparisons``): prompt "POST: <post>\\n\\nTL;DR:" (the
  R3M paper's; the title is left out), responses " " + the two summaries, chosen = ``choice``.

Truncation (TRL's DPOTrainer policy): when prompt + the longer response exceed ``max_length`` tokens, the
prompt keeps its last ``max_prompt_length`` tokens (the turn the responses answer), then both responses keep
their first ``max_length - len(prompt)`` tokens. Bad pairs: identical chosen and rejected (before or after
truncation), an empty response, no shared prompt: dropped and counted in the log (``bad_pairs: drop``) or
an error naming the first one (``bad_pairs: error``).

Batches are the `preference` kind (`reprolab.data.preference`): ``chosen_input_ids`` / ``chosen_labels`` /
``chosen_attention_mask`` and the ``rejected_`` twins, right-padded to one width, labels pre-shifted and -100
on the prompt and the padding; training batches carry ``pair_id`` (the pair's index in the training set)
and ``flipped`` (labels swapped by ``data.flip``).
"""
from __future__ import annotations

import logging
import os
from typing import Iterator

import torch

from reprolab.checks import ConfigError
from reprolab.data.source import Batch, Source, batch_generator
from reprolab.data.text import DataFileError, resolve_data_file
from reprolab.data.tokenizers import HFTokenizer, build_tokenizer

log = logging.getLogger(__name__)
ASSISTANT = "\n\nAssistant:"


class BadPair(ValueError):
    """A row that gives no usable pair; the message is the reason."""


def split_hh(chosen: str, rejected: str) -> tuple[str, str, str]:
    """(prompt, chosen response, rejected response) of two HH dialogues that share all but the last reply."""
    shared = os.path.commonprefix([chosen, rejected])
    cut = shared.rfind(ASSISTANT)
    if cut < 0:
        raise BadPair("no shared prompt (the two dialogues share no turn ending in '\\n\\nAssistant:')")
    prompt = shared[: cut + len(ASSISTANT)]
    return prompt, chosen[len(prompt):], rejected[len(prompt):]


def render_chat(messages) -> str:
    """Chat messages in HH's dialogue format (the one template for every source, so byte-level models see one)."""
    names = {"user": "Human", "assistant": "Assistant", "system": "System"}
    return "".join(f"\n\n{names.get(m['role'], m['role'].title())}: {m['content']}" for m in messages)


def split_row(row: dict, fmt: str) -> tuple[str, str, str]:
    """(prompt, chosen response, rejected response) of one dataset row in ``fmt``."""
    if fmt == "hh":
        return split_hh(row["chosen"], row["rejected"])
    if fmt == "tldr":
        summaries, choice = row["summaries"], int(row["choice"])
        prompt = f"POST: {row['info']['post']}\n\nTL;DR:"
        return prompt, " " + summaries[choice]["text"].strip(), " " + summaries[1 - choice]["text"].strip()
    chosen, rejected = row["chosen"], row["rejected"]
    if isinstance(chosen, list):  # conversational: the prompt's turns, then the answer as the last message
        prompt = render_chat(row["prompt"] if row.get("prompt") else chosen[:-1]) + ASSISTANT
        return prompt, " " + chosen[-1]["content"], " " + rejected[-1]["content"]
    return render_chat([{"role": "user", "content": row["prompt"]}]) + ASSISTANT, " " + chosen, " " + rejected


def is_tie(row: dict) -> bool:
    """Equal judge scores of chosen and rejected (UltraFeedback's ``score_chosen``, at the top or in ``metadata``)."""
    meta = row.get("metadata") or {}
    chosen, rejected = row.get("score_chosen", meta.get("score_chosen")), row.get("score_rejected", meta.get("score_rejected"))
    return chosen is not None and chosen == rejected


def truncate(prompt: list, chosen: list, rejected: list, max_length: int, max_prompt_length: int):
    """The truncation policy of the module docstring: the prompt keeps its end, the responses their start."""
    if len(prompt) + max(len(chosen), len(rejected)) > max_length:
        prompt = prompt[-max_prompt_length:]
    room = max_length - len(prompt)
    return prompt, chosen[:room], rejected[:room]


def check_pair(prompt: list, chosen: list, rejected: list) -> None:
    if not chosen or not rejected:
        raise BadPair("an empty response")
    if chosen == rejected:
        raise BadPair("identical chosen and rejected responses")
    if not prompt:
        raise BadPair("an empty prompt")


class PreferenceTextSource(Source):
    kind = "preference"

    def __init__(self, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        if cfg.tokenizer == "char":
            raise ConfigError("data.tokenizer=char builds its vocabulary from a text corpus; preference pairs use "
                              "data.tokenizer=byte (offline) or the model's HF tokenizer id.")
        self.tokenizer = build_tokenizer(cfg.tokenizer)
        self.vocab_size = self.tokenizer.vocab_size
        self.pad_id = self.tokenizer.pad_id if self.tokenizer.pad_id is not None else 0
        train = self._pairs(cfg.train_split, cfg.train_pairs)
        if cfg.val_split is None:  # hold the last val_pairs of the training split out
            if len(train) <= cfg.val_pairs:
                raise DataFileError(f"the training split has {len(train)} usable pairs, not more than data.val_pairs="
                                    f"{cfg.val_pairs} to hold out: lower data.val_pairs or name a data.val_split.")
            train, self.val = train[: -cfg.val_pairs], train[-cfg.val_pairs:]
        else:
            self.val = self._pairs(cfg.val_split, cfg.val_pairs)
        if len(train) < cfg.batch_size:
            raise DataFileError(f"the training split has {len(train)} usable pairs, fewer than data.batch_size="
                                f"{cfg.batch_size}: lower data.batch_size or use more data (data.train_pairs).")
        g = torch.Generator().manual_seed(cfg.flip_seed)
        self.flipped = torch.rand(len(train), generator=g) < cfg.flip
        self.train = [(p, r, c) if f else (p, c, r) for (p, c, r), f in zip(train, self.flipped.tolist())]
        self._perms: dict[int, torch.Tensor] = {}

    # ---- loading ---------------------------------------------------------------------------
    def _rows(self, split: str):
        from reprolab import hub

        cfg = self.cfg
        files = None
        if cfg.data_files:
            files = {k: [str(resolve_data_file(cfg.data_dir, f)) for f in v] for k, v in cfg.data_files.items()}
            if split not in files:
                raise ConfigError(f"data.data_files names the splits {sorted(files)}, and the data reads split {split!r}: "
                                  "set data.train_split / data.val_split to one of them (data.val_split=null holds "
                                  "pairs of the training split out).")
        kwargs = {"data_files": files} if files else {}
        if cfg.hf_data_dir:
            kwargs["data_dir"] = cfg.hf_data_dir
        return hub.load_dataset(cfg.hf_path, cfg.hf_name, split=split, **kwargs,
                                instead="use the local files under ../shared/data/preference (data=hh_rlhf_local, "
                                        "data=ultrafeedback).")

    def _encode(self, text: str, first: bool) -> list[int]:
        """Tokens of a prompt (``first``: with the tokenizer's BOS) or of a response (with its EOS)."""
        if isinstance(self.tokenizer, HFTokenizer):
            ids = self.tokenizer.tok(text, add_special_tokens=first)["input_ids"]
            return ids if first or self.tokenizer.eos_id is None else ids + [self.tokenizer.eos_id]
        return self.tokenizer.encode(text)

    def _pairs(self, split: str, limit: int | None) -> list[tuple[list, list, list]]:
        """Token triples (prompt, chosen, rejected) of the split's first ``limit`` usable pairs."""
        cfg = self.cfg
        pairs, bad, seen = [], {}, 0
        for i, row in enumerate(self._rows(split)):
            if limit is not None and len(pairs) >= limit:
                break
            seen += 1
            try:
                if cfg.drop_ties and is_tie(row):
                    continue
                prompt, chosen, rejected = split_row(row, cfg.format)
                if chosen == rejected:
                    raise BadPair("identical chosen and rejected responses")
                triple = truncate(self._encode(prompt, True), self._encode(chosen, False), self._encode(rejected, False),
                                  cfg.max_length, cfg.max_prompt_length)
                check_pair(*triple)
            except BadPair as e:
                if cfg.bad_pairs == "error":
                    raise DataFileError(f"row {i} of the {split} split ({cfg.hf_path}) has {e}: fix the data, or set "
                                        "data.bad_pairs=drop to leave such pairs out (counted in the log).") from None
                bad[str(e)] = bad.get(str(e), 0) + 1
                continue
            except KeyError as e:
                raise DataFileError(f"row {i} of the {split} split ({cfg.hf_path}) has no field {e} that "
                                    f"data.format={cfg.format} reads: pick the format of this data (hh, "
                                    "prompt_chosen_rejected, tldr).") from None
            pairs.append(triple)
        if bad:
            log.warning(f"data: left out {sum(bad.values())} of {seen} pairs of the {split} split: "
                        + ", ".join(f"{n} with {why}" for why, n in bad.items()))
        if not pairs:
            raise DataFileError(f"the {split} split ({cfg.hf_path}) gives no usable pair: is it empty?")
        return pairs

    # ---- batches ---------------------------------------------------------------------------
    def collate(self, triples: list, pair_id: torch.Tensor | None = None, flipped: torch.Tensor | None = None) -> Batch:
        """Prompt + response rows, right-padded to one width for chosen and rejected alike."""
        seqs = [p + c for p, c, _ in triples] + [p + r for p, _, r in triples]
        width = max(len(s) for s in seqs) - 1
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(seqs), width), -100, dtype=torch.long)
        mask = torch.zeros(len(seqs), width, dtype=torch.long)
        for i, s in enumerate(seqs):
            n, start = len(s) - 1, len(triples[i % len(triples)][0]) - 1  # labels from the first response token
            ids[i, :n], mask[i, :n] = torch.tensor(s[:-1]), 1
            labels[i, start:n] = torch.tensor(s[start + 1:])
        b = len(triples)
        out = {f"{name}_{key}": t[half] for key, t in (("input_ids", ids), ("labels", labels), ("attention_mask", mask))
               for name, half in (("chosen", slice(0, b)), ("rejected", slice(b, None)))}
        if pair_id is not None:
            out["pair_id"] = pair_id
        if flipped is not None:
            out["flipped"] = flipped
        return out

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            self._perms = {epoch: torch.randperm(len(self.train), generator=batch_generator(self.seed, epoch, 0))}
        return self._perms[epoch]

    def train_batches(self, start: int, rank: int, world_size: int) -> Iterator[Batch]:
        bs = self.cfg.batch_size
        per_epoch = len(self.train) // bs  # a ragged last batch is dropped
        i = start
        while True:  # batch i of every rank: global batch i * world_size + rank of the epoch-wise shuffles
            g = i * world_size + rank
            ids = self._perm(g // per_epoch)[(g % per_epoch) * bs:(g % per_epoch + 1) * bs]
            yield self.collate([self.train[j] for j in ids.tolist()], pair_id=ids, flipped=self.flipped[ids])
            i += 1

    def val_batches(self) -> list[Batch]:
        bs = self.cfg.batch_size
        return [self.collate(self.val[i:i + bs]) for i in range(0, len(self.val), bs)]
