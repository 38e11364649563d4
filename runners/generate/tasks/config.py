"""Typed schemas of the `generate` runner's tasks (``conf/runner/task/<name>.yaml``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from reprolab import checks
from reprolab.registry import schema
from runners.generate.tasks.base import Example, Task
from runners.generate.tasks.math import MATH  # noqa: F401  (registers the MATH task schema)
from runners.generate.tasks.qa import QA, RecallQA  # noqa: F401  (registers the QA task schemas)

SOURCES = ("local", "hf")
BBH_MULTIPLE_CHOICE = (
    "date_understanding", "disambiguation_qa", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
    "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation",
    "penguins_in_a_table", "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection",
    "snarks", "temporal_sequences", "tracking_shuffled_objects_five_objects", "tracking_shuffled_objects_seven_objects",
    "tracking_shuffled_objects_three_objects",
)
BBH_FREE_FORM = (
    "boolean_expressions", "causal_judgement", "dyck_languages", "formal_fallacies", "multistep_arithmetic_two",
    "navigate", "object_counting", "sports_understanding", "web_of_lies", "word_sorting",
)
BBH_SUBTASKS = BBH_MULTIPLE_CHOICE + BBH_FREE_FORM  # the 27 subtasks


@schema("task", "gsm8k")
@dataclass
class GSM8K(Task):
    """GSM8K chain-of-thought, ``num_shots`` exemplars from the train split, exact match of the last
    number (official ``evaluation_gsm8k.py``). Paper: 8-shot, greedy, 256 new tokens, 1319 test problems.

    source: ``local`` (``train_file`` / ``test_file`` under ``data_dir``: the official jsonl files) or
    ``hf`` (``hf_path`` / ``hf_name``, the HF ``gsm8k`` / ``main`` dataset).
    """

    source: str = "local"
    data_dir: str = "${paths.data_dir}"
    train_file: str = "gsm8k/train.jsonl"
    test_file: str = "gsm8k/test.jsonl"
    hf_path: str = "gsm8k"
    hf_name: Optional[str] = "main"
    num_shots: int = 8
    shot_seed: int = 0
    max_new_tokens: int = 256

    def __post_init__(self):
        checks.one_of("runner.task.source", self.source, SOURCES)
        checks.non_negative("runner.task.num_shots", self.num_shots)
        checks.positive("runner.task.max_new_tokens", self.max_new_tokens)

    def examples(self, tokenizer) -> list[Example]:
        from runners.generate.tasks import cot

        train = cot.load_rows(self.source, self.data_dir, self.train_file, self.hf_path, self.hf_name, "train")
        test = self._take(cot.load_rows(self.source, self.data_dir, self.test_file, self.hf_path, self.hf_name, "test"))
        shots = "\n".join(cot.gsm8k_exemplar(r) for r in cot.pick_shots(train, self.num_shots, self.shot_seed))
        return [Example(tokenizer.encode(shots + "\nQuestion: " + r["question"] + "\n"), target=r["answer"]) for r in test]

    def is_done(self, tokenizer, generated):
        from runners.generate.tasks import cot

        return cot.SPLIT in cot.tail_text(tokenizer, generated)

    def score(self, tokenizer, example, generated):
        from runners.generate.tasks import cot

        ok, _ = cot.gsm8k_correct(tokenizer.decode(generated), example.target)
        return {"correct": float(ok)}


@schema("task", "aqua")
@dataclass
class AQuA(Task):
    """AQuA-RAT chain-of-thought (official ``evaluation_aqua_cot.py``): ``num_shots`` train problems as
    exemplars, options listed, answer letter/text matched. Paper: 8-shot, greedy, 196 new tokens, 254
    test problems. HF ``aqua_rat`` (no local copy in ../shared/data; ``source=local`` reads jsonl files
    with the same fields: question, options, rationale, correct)."""

    source: str = "hf"
    data_dir: str = "${paths.data_dir}"
    train_file: str = "aqua/train.jsonl"
    test_file: str = "aqua/test.jsonl"
    hf_path: str = "aqua_rat"
    hf_name: Optional[str] = None
    num_shots: int = 8
    shot_seed: int = 0
    max_new_tokens: int = 196

    def __post_init__(self):
        checks.one_of("runner.task.source", self.source, SOURCES)
        checks.non_negative("runner.task.num_shots", self.num_shots)

    def examples(self, tokenizer) -> list[Example]:
        from runners.generate.tasks import cot

        train = cot.load_rows(self.source, self.data_dir, self.train_file, self.hf_path, self.hf_name, "train")
        test = self._take(cot.load_rows(self.source, self.data_dir, self.test_file, self.hf_path, self.hf_name, "test"))
        shots = "\n".join(cot.aqua_exemplar(r) for r in cot.pick_shots(train, self.num_shots, self.shot_seed))
        return [Example(tokenizer.encode(shots + "\n" + cot.aqua_question(r)), target=r) for r in test]

    def is_done(self, tokenizer, generated):
        from runners.generate.tasks import cot

        return cot.SPLIT in cot.tail_text(tokenizer, generated)

    def score(self, tokenizer, example, generated):
        from runners.generate.tasks import cot

        return {"correct": float(cot.aqua_correct(tokenizer.decode(generated), example.target))}


@schema("task", "bbh")
@dataclass
class BBH(Task):
    """BIG-Bench-Hard, 3-shot chain-of-thought (official ``evaluation_bbh_cot.py``): for each subtask the
    prompt is its CoT prompt file (``prompt_dir/<subtask>.txt``, the BIG-Bench-Hard repository's
    ``cot-prompts``; not in ../shared/data) + ``"\n\nQ: " + input + "\nA: Let's think step by step."``;
    the answer after "answer is" is matched exactly (an option "(X)" for multiple-choice subtasks).
    ``accuracy`` is the mean over subtasks, as the paper reports. HF ``lukaemon/bbh`` (config = subtask,
    split ``test``); ``source=local`` reads ``<data_dir>/<local_dir>/<subtask>.jsonl`` (fields input, target).
    ``max_examples`` applies per subtask. Official batch size: 4.
    """

    source: str = "hf"
    data_dir: str = "${paths.data_dir}"
    prompt_dir: str = "${paths.data_dir}/bbh/cot-prompts"
    local_dir: str = "bbh"
    hf_path: str = "lukaemon/bbh"
    subtasks: list = field(default_factory=lambda: list(BBH_SUBTASKS))
    max_new_tokens: int = 256

    def __post_init__(self):
        checks.one_of("runner.task.source", self.source, SOURCES)
        for t in self.subtasks:
            checks.one_of("runner.task.subtasks[]", t, BBH_SUBTASKS)

    def examples(self, tokenizer) -> list[Example]:
        from pathlib import Path

        from runners.generate.tasks import cot

        out = []
        for sub in self.subtasks:
            prompt_file = Path(self.prompt_dir) / f"{sub}.txt"
            if not prompt_file.is_file():
                raise FileNotFoundError(f"BBH CoT prompt not found: {prompt_file}. Put the BIG-Bench-Hard cot-prompts/ "
                                        "files there or set runner.task.prompt_dir.")
            prompt = prompt_file.read_text()
            rows = cot.load_rows(self.source, self.data_dir, f"{self.local_dir}/{sub}.jsonl", self.hf_path, sub, "test")
            out += [Example(tokenizer.encode(prompt + "\n\nQ: " + r["input"] + "\nA: Let's think step by step."),
                            target=r["target"], meta={"subtask": sub}) for r in self._take(rows)]
        return out

    def is_done(self, tokenizer, generated):
        from runners.generate.tasks import cot

        tail = cot.tail_text(tokenizer, generated)
        return cot.SPLIT in tail or "\n\nQ:" in tail

    def score(self, tokenizer, example, generated):
        from runners.generate.tasks import cot

        text = tokenizer.decode(generated).split("\n\nQ:")[0]
        mc = example.meta["subtask"] in BBH_MULTIPLE_CHOICE
        return {"correct": float(cot.bbh_extract(text, mc) == example.target)}

    def accuracy(self, examples, correct):
        per = {}
        for e, c in zip(examples, correct):
            per.setdefault(e.meta["subtask"], []).append(c)
        return sum(sum(v) / len(v) for v in per.values()) / len(per)


@schema("task", "perplexity")
@dataclass
class Perplexity(Task):
    """Perplexity of held-out text (`runners.generate.tasks.perplexity`): ``num_windows`` windows of
    ``window`` tokens of ``file``; the first ``prefix`` tokens are prefilled, the rest decoded one by
    one over the compressed cache."""

    mode = "score"
    data_dir: str = "${paths.data_dir}"
    file: str = "lm/wikitext2_tokens_test.txt"
    window: int = 512
    prefix: int = 128
    num_windows: int = 8

    def __post_init__(self):
        for key in ("window", "prefix", "num_windows"):
            checks.positive(f"runner.task.{key}", getattr(self, key))
        if self.prefix >= self.window:
            raise checks.ConfigError(f"runner.task.prefix={self.prefix} must be < runner.task.window={self.window}.")

    def examples(self, tokenizer) -> list[Example]:
        from reprolab.data.text import resolve_data_file
        from runners.generate.tasks.perplexity import windows

        ids = tokenizer.encode(resolve_data_file(self.data_dir, self.file).read_text(encoding="utf-8"))
        out = windows(ids, self.window, self.prefix, self.num_windows)
        if not out:
            raise ValueError(f"{self.file} has {len(ids)} tokens, fewer than runner.task.window={self.window}.")
        return out


@schema("task", "recall")
@dataclass
class Recall(Task):
    """Synthetic key:value recall (`reprolab.data.recall`): greedy-generate the recall (``order``) of a
    ``num_pairs``-pair dictionary; ``accuracy`` is the fraction of values right, ``exact`` the fraction of
    fully right answers. Use the sizes the model was trained with (``data=recall``); ``seed`` draws test
    sequences the model never saw (training draws from the run's seed).
    """

    num_keys: int = 64
    num_values: int = 64
    num_pairs: int = 32
    order: str = "reverse"
    num_examples: int = 64
    seed: int = 98765

    def __post_init__(self):
        from reprolab.data.recall import RecallTask

        checks.positive("runner.task.num_examples", self.num_examples)
        try:
            RecallTask(self.num_keys, self.num_values, self.num_pairs, self.order)
        except ValueError as e:
            raise checks.ConfigError(str(e).replace("data.", "runner.task.")) from None

    @property
    def task(self):
        from reprolab.data.recall import RecallTask

        return RecallTask(self.num_keys, self.num_values, self.num_pairs, self.order)

    @property
    def own_vocab(self) -> int:
        return self.task.vocab_size

    def new_tokens(self) -> int:
        return 2 * self.num_pairs + 1  # the whole answer, through EOS

    def examples(self, tokenizer) -> list[Example]:
        import torch

        task = self.task
        prompts, answers = task.split(task.sample(self.num_examples, torch.Generator().manual_seed(self.seed)))
        return self._take([Example(p.tolist(), target=a) for p, a in zip(prompts, answers)])

    def is_done(self, tokenizer, generated):
        from reprolab.data.recall import EOS

        return len(generated) > 0 and generated[-1] == EOS

    def score(self, tokenizer, example, generated):
        import torch

        s = self.task.score(example.target[None], torch.tensor([generated]))
        return {"correct": s["value_acc"], "exact": s["exact"]}


@schema("task", "llm_adapters")
@dataclass
class LLMAdapters(Task):
    """LLM-Adapters' test sets (`runners.generate.tasks.llm_adapters`): the RoseLoRA fine-tuning tables (commonsense:
    boolq, piqa, social_i_qa, hellaswag, winogrande, ARC-Easy, ARC-Challenge, openbookqa; arithmetic: gsm8k, AQuA,
    mawps, SVAMP, and AddSub, MultiArith, SingleEq of the original table). Each dataset is read in place from
    ``<data_dir>/<dir>/<name>/test.json`` (LLM-Adapters' ``dataset/`` folder); zero-shot, the official evaluation
    template, answers extracted as the official scripts do. ``accuracy`` is the mean over ``datasets`` (the tables'
    Avg column); ``accuracy_<name>`` each dataset's. Official budgets: 32 new tokens (commonsense), 256 (arithmetic).
    ``max_examples`` applies per dataset.
    """

    data_dir: str = "${paths.data_dir}"
    dir: str = "llm_adapters/dataset"
    datasets: list = field(default_factory=lambda: ["boolq"])
    max_new_tokens: int = 32

    def __post_init__(self):
        from runners.generate.tasks.llm_adapters import DATASETS

        if not self.datasets:
            raise checks.ConfigError("runner.task.datasets is empty: name at least one LLM-Adapters test set.")
        for name in self.datasets:
            checks.one_of("runner.task.datasets[]", name, DATASETS)
        checks.positive("runner.task.max_new_tokens", self.max_new_tokens)

    def examples(self, tokenizer) -> list[Example]:
        from pathlib import Path

        from runners.generate.tasks import llm_adapters

        out = []
        for name in self.datasets:
            path = Path(self.data_dir) / self.dir / name / "test.json"
            if not path.is_file():
                raise FileNotFoundError(f"LLM-Adapters test set not found: {path}. Put LLM-Adapters' dataset/ folder "
                                        "there (github AGI-Edgerunners/LLM-Adapters) or set runner.task.dir.")
            out += [Example(tokenizer.encode(llm_adapters.prompt(r["instruction"], r.get("input"))), target=r["answer"],
                            meta={"dataset": name}) for r in self._take(llm_adapters.read_records(path))]
        return out

    def is_done(self, tokenizer, generated):
        eos = getattr(tokenizer, "eos_id", None)
        return eos is not None and len(generated) > 0 and generated[-1] == eos

    def score(self, tokenizer, example, generated):
        from runners.generate.tasks import llm_adapters

        eos = getattr(tokenizer, "eos_id", None)
        cut = generated[: generated.index(eos)] if eos is not None and eos in generated else generated
        return {"correct": float(llm_adapters.correct(example.meta["dataset"], tokenizer.decode(cut), example.target))}

    def accuracy(self, examples, correct):
        per = self.breakdown(examples, correct)
        return sum(per.values()) / len(per)

    def breakdown(self, examples, correct) -> dict[str, float]:
        per = {}
        for e, c in zip(examples, correct):
            per.setdefault(e.meta["dataset"], []).append(c)
        return {name: sum(v) / len(v) for name, v in per.items()}
