"""Tasks whose prompt is a context of sentences and a question (open-book QA): each example carries the
token span of every context sentence, the gold (supporting) sentences and the span to highlight, so a
steering (`steering=pasta`: the task's highlight; `steering=autopasta`: its own) can act on them.

- ``recall_qa``: associative recall with distractors (`reprolab.data.qa_recall`, AutoPASTA's CPU analog);
- ``qa``: text QA scored by SQuAD exact match and token F1 (`reprolab.data.qa`): the SQuAD v1.1 sample
  in ../shared/data/qa, NQ-Swap (HF ``pminervini/NQ-Swap``) or HotpotQA distractor (HF ``hotpotqa/hotpot_qa``).
"""
from __future__ import annotations

import random
from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Optional

from reprolab import checks
from reprolab.registry import schema
from runners.generate.tasks.base import Example, Task

HIGHLIGHTS = ("oracle", "random", "none")
QA_SOURCES = ("squad", "nq_swap", "hotpotqa")
ANSWER_PROMPT = ("Answer the question below, paired with a context that provides background knowledge. Only output "
                 "the answer without other words.\n\nContext: {context}\n\n{key}Question: {question}\n\nAnswer:")
KEY_PROMPT = ("A question and a passage are shown below. Please select the key sentence in the passage that supports "
              "to answer the question correctly. Only output the exactly same sentence from the passage without other "
              "words.\n\nPassage: {context}\n\nQuestion: {question}\n\nKey sentence:")
KEY_LINE = "Key sentence: {sentence}\n\n"


@dataclass
class HighlightTask(Task):
    """Base of the tasks with highlightable context sentences.

    highlight: what ``steering=pasta`` steers: ``oracle`` (the gold supporting sentences), ``random`` (one
      context sentence drawn uniformly, seeded by ``highlight_seed`` and the example: the control) or
      ``none``. ``steering=autopasta`` ignores it and highlights the sentence the model identifies.
    profile_examples: held-out examples (disjoint from the test ones) for head profiling.
    """

    text: ClassVar[bool] = False  # the prompts are words: the model can be asked for its key sentence
    highlight: str = "oracle"
    highlight_seed: int = 0
    profile_examples: int = 200

    def __post_init__(self):
        checks.one_of("runner.task.highlight", self.highlight, HIGHLIGHTS)
        checks.positive("runner.task.profile_examples", self.profile_examples)

    def examples(self, tokenizer) -> list[Example]:
        out = self._take(self._examples(tokenizer, profile=False))
        for i, e in enumerate(out):
            e.meta["highlight"] = self._highlight_of(e, i)
        return out

    def profile(self, tokenizer) -> list[Example]:
        """Held-out examples with their gold sentences (highlighted as oracle) for head profiling."""
        out = self._examples(tokenizer, profile=True)[: self.profile_examples]
        for e in out:
            e.meta["highlight"] = [e.meta["sentences"][g] for g in e.meta["gold"]] or None
        return out

    def _highlight_of(self, e: Example, i: int):
        spans, gold = e.meta["sentences"], e.meta["gold"]
        if self.highlight == "oracle":
            return [spans[g] for g in gold] or None  # no known gold sentence: unsteered
        if self.highlight == "random":
            return [spans[random.Random(self.highlight_seed * 1_000_003 + i).randrange(len(spans))]]
        return None

    @abstractmethod
    def _examples(self, tokenizer, profile: bool) -> list[Example]:
        """The task's test examples, or (``profile``) its held-out profiling ones."""

    @abstractmethod
    def with_key(self, tokenizer, example: Example, i: int) -> Example:
        """Iterative prompting: the example's prompt with sentence ``i`` repeated before the question."""

    def key_prompt(self, tokenizer, example: Example) -> Optional[list[int]]:
        """The stage-1 prompt asking the model for the key sentence (None: the task has no text)."""
        return None

    @abstractmethod
    def sentence_prompt(self, tokenizer, example: Example, i: int) -> list[int]:
        """The answer prompt with sentence ``i`` alone as the context (AutoPASTA's ``identify=probe``)."""


@schema("task", "recall_qa")
@dataclass
class RecallQA(HighlightTask):
    """Associative recall with distractors (`reprolab.data.qa_recall`): ``sentences`` context sentences
    (``k v .`` facts, ``NOT k* v' .`` distractors with probability ``distractor_p``), then ``Q k* EQ``; one
    token is generated and must be v*. Use the key/value sizes and the question format (``eq``) the model was
    trained with (``data=recall_distractors``); ``seed`` draws the test examples, ``seed + 10000`` the profiling ones."""

    num_keys: int = 64
    num_values: int = 64
    sentences: int = 16
    distractor_p: float = 0.3
    eq: bool = True
    num_examples: int = 500
    seed: int = 98765
    max_new_tokens: int = 1

    def __post_init__(self):
        super().__post_init__()
        checks.positive("runner.task.num_examples", self.num_examples)
        try:
            self.task
        except ValueError as e:
            raise checks.ConfigError(f"runner.task.{e}") from None

    @property
    def task(self):
        from reprolab.data.qa_recall import RecallQATask

        return RecallQATask(self.num_keys, self.num_values, self.sentences, self.sentences, self.distractor_p, eq=self.eq)

    @property
    def own_vocab(self) -> int:
        return self.task.vocab_size

    def _examples(self, tokenizer, profile: bool) -> list[Example]:
        import torch

        seed, n = (self.seed + 10_000, self.profile_examples) if profile else (self.seed, self.num_examples)
        return [_recall_example(r) for r in self.task.sample(n, torch.Generator().manual_seed(seed))]

    def with_key(self, tokenizer, example, i):
        e = _recall_example(example.meta["record"].with_key(i))
        e.meta["highlight"] = None
        return e

    def sentence_prompt(self, tokenizer, example, i):
        a, b = example.meta["sentences"][i]
        p = example.prompt
        return p[:1] + p[a:b] + p[example.meta["record"].question_at :]

    def score(self, tokenizer, example, generated):
        ok = float(generated[:1] == [example.target])
        return {"correct": ok, "exact": ok}


def _recall_example(r) -> Example:
    return Example(list(r.prompt), target=r.answer, meta={"sentences": list(r.sentences), "gold": [r.gold], "record": r})


@schema("task", "qa")
@dataclass
class QA(HighlightTask):
    """Open-book QA, greedy answers scored by exact match and token F1 after the official SQuAD v1.1
    normalisation (``exact``, ``f1``; ``accuracy`` is EM). Prompts are ``answer_prompt`` (with ``{context}``,
    ``{question}`` and ``{key}``: empty, or ``key_line`` for iterative prompting) and ``key_prompt`` (AutoPASTA's
    stage 1), from the spec's §2.5 wording; ``chat``: wrapped in the tokenizer's chat template (instruct models).
    Each context sentence is tokenised as its own segment, so its token span is exact.

    source: ``squad`` (the official JSON ``file`` under ``data_dir``; profiling examples from ``profile_file``,
      other articles), ``nq_swap`` (``hf_path`` split ``split``; ``context`` ``org`` = NQ, ``sub`` = the
      counterfactual) or ``hotpotqa`` (``hf_path`` / ``hf_name`` ``distractor``). HF sources profile on
      ``profile_split`` (the last examples when it is the test split: disjoint).
    sample_seed: the shuffle before the first ``max_examples`` are taken. max_new_tokens: 32 (spec §4).
    """

    text: ClassVar[bool] = True
    source: str = "squad"
    data_dir: str = "${paths.data_dir}"
    file: str = "qa/squad_v1.1_dev_half_a.json"
    profile_file: str = "qa/squad_v1.1_dev_half_b.json"
    hf_path: Optional[str] = None
    hf_name: Optional[str] = None
    split: str = "validation"
    profile_split: str = "train"
    context: str = "org"
    sample_seed: int = 0
    chat: bool = False
    answer_prompt: str = ANSWER_PROMPT
    key_prompt_text: str = KEY_PROMPT
    key_line: str = KEY_LINE
    max_new_tokens: int = 32

    def __post_init__(self):
        super().__post_init__()
        checks.one_of("runner.task.source", self.source, QA_SOURCES)
        checks.one_of("runner.task.context", self.context, ("org", "sub"))
        for key, names in (("answer_prompt", ("{context}", "{question}", "{key}")), ("key_prompt_text", ("{context}", "{question}"))):
            missing = [n for n in names if n not in getattr(self, key)]
            if missing:
                raise checks.ConfigError(f"runner.task.{key} lacks {missing}: the prompt template must name them.")
        if self.source != "squad" and not self.hf_path:
            raise checks.ConfigError(f"runner.task.source={self.source} reads the HF hub: set runner.task.hf_path "
                                     "(pminervini/NQ-Swap, hotpotqa/hotpot_qa), e.g. runner/task=qa_nq_swap.")

    # ---- data ---------------------------------------------------------------------------------
    def records(self, profile: bool):
        from reprolab.data import qa

        if self.source == "squad":
            from reprolab.data.text import resolve_data_file

            rows = qa.squad_records(resolve_data_file(self.data_dir, self.profile_file if profile else self.file))
        else:
            from datasets import load_dataset

            split = self.profile_split if profile else self.split
            data = load_dataset(self.hf_path, self.hf_name, split=split)
            rows = ([qa.nq_swap_record(r, i, self.context) for i, r in enumerate(data)] if self.source == "nq_swap"
                    else [qa.hotpot_record(r) for r in data])
        random.Random(self.sample_seed).shuffle(rows)
        if self.source != "squad" and self.profile_split == self.split:  # one split: profiling from its end
            rows = rows[::-1] if profile else rows[: max(0, len(rows) - self.profile_examples)]
        return rows

    def _examples(self, tokenizer, profile: bool) -> list[Example]:
        rows = self.records(profile)
        rows = rows[: self.profile_examples] if profile else self._take(rows)
        return [self._example(tokenizer, r) for r in rows]

    # ---- prompts ------------------------------------------------------------------------------
    def _template(self, tokenizer, text: str) -> tuple[str, str]:
        """(the text before the context, the text after it), chat-wrapped if ``chat``."""
        if self.chat:
            text = tokenizer.tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                     add_generation_prompt=True)
        before, after = text.split("\x00CONTEXT\x00")
        return before, after

    def _example(self, tokenizer, r, key: Optional[int] = None) -> Example:
        from methods.pasta.spans import encode_segments

        key_text = "" if key is None else self.key_line.format(sentence=r.sentence(key))
        text = self.answer_prompt.format(context="\x00CONTEXT\x00", question=r.question, key=key_text)
        before, after = self._template(tokenizer, text)
        segments, cuts = [before], 0
        for a, b in r.sentences:  # each sentence with the whitespace before it
            segments.append(r.context[cuts:b])
            cuts = b
        tail = r.context[cuts:] + after
        ids, spans = encode_segments(tokenizer, segments + [tail], [False] + [True] * len(r.sentences) + [False],
                                     special=not self.chat)
        return Example(ids, target=r.answers, meta={"sentences": spans, "gold": list(r.gold), "record": r})

    def with_key(self, tokenizer, example, i):
        e = self._example(tokenizer, example.meta["record"], key=i)
        e.meta["highlight"] = None
        return e

    def key_prompt(self, tokenizer, example):
        r = example.meta["record"]
        text = self.key_prompt_text.format(context="\x00CONTEXT\x00", question=r.question)
        before, after = self._template(tokenizer, text)
        from methods.pasta.spans import encode_segments

        return encode_segments(tokenizer, [before, r.context + after], [False, False], special=not self.chat)[0]

    def sentence_text(self, example, i):
        """Context sentence ``i`` as text (what AutoPASTA's stage 2 maps the model's answer onto; text tasks only)."""
        return example.meta["record"].sentence(i)

    def sentence_prompt(self, tokenizer, example, i):
        from reprolab.data.qa import QARecord

        r = example.meta["record"]
        s = r.sentence(i)
        return self._example(tokenizer, QARecord(r.id, r.question, s, [(0, len(s))], r.answers, [])).prompt

    # ---- scoring ------------------------------------------------------------------------------
    def is_done(self, tokenizer, generated):
        eos = getattr(tokenizer, "eos_id", None)
        return (eos is not None and generated[-1] == eos) or "\n" in tokenizer.decode(generated[-4:])

    def answer_text(self, tokenizer, generated) -> str:
        eos = getattr(tokenizer, "eos_id", None)
        ids = [t for t in generated if t != eos]
        return tokenizer.decode(ids).strip().split("\n")[0].strip()

    def score(self, tokenizer, example, generated):
        from reprolab.data.qa import exact_match, f1_score

        text = self.answer_text(tokenizer, generated)
        em = exact_match(text, example.target)
        return {"correct": em, "exact": em, "f1": f1_score(text, example.target)}
