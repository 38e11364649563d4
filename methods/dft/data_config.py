"""Schemas of DFT's data: positives (prompt + its one good answer) and negatives sampled offline from
the base model, cached on disk (`methods.dft.negatives`), served per epoch (spec ../shared/papers/dft.md
§2.4). Each source has three views, one per data kind: ``positives`` (DFT, DFT2, SFT), ``preference``
(the pairwise baselines: chosen = the positive, rejected = one negative) and, for the toy's base model,
``tokens`` (`data=dft_toy_base`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from reprolab import checks
from reprolab.registry import schema

REF_PROMPTS = ("train", "generation")


@dataclass
class PositivesData:
    """Fields every DFT data source shares.

    batch_size: prompts per step per device (each with 1 positive and m negatives).
    negatives_per_step: m, negatives per prompt per step (the recipe's samples_per_prompt = 2).
    num_negatives: K, negatives generated per training prompt (the recipe: m x 2 epochs = 4).
    fresh_each_epoch: epoch e uses columns e*m .. e*m+m-1 (mod K: past K/m epochs the pool is cycled,
      where the official code stops with a missing column); false: columns 0..m-1 every epoch (the
      official ``sample: false``). The pairwise view (kind ``preference``) uses the first of them.
    temperature / top_k / top_p / max_new_tokens / gen_seed: the sampling of the negatives
      (`runners.generate.sampling.Sampling`); gen_batch_size: rows decoded together.
    ref_prompt: the prompt under which the negatives' pi_ref log-probs are cached: ``train`` (the
      official: the training prompt, without the generation's system message; spec §2.6) or
      ``generation`` (the prompt they were sampled from: the ablation of spec §2.6).
    cache_dir: where negatives files are kept and reused (keyed by the model's weights, tokenizer, data
      and these settings); null: generated in memory for this run only.
    negatives_file: a negatives file to use as is; it is refused when it was made with another model,
      tokenizer or data.
    """

    kind: ClassVar[str] = "positives"

    batch_size: int = 32
    negatives_per_step: int = 2
    num_negatives: int = 4
    fresh_each_epoch: bool = True
    temperature: float = 0.7
    top_k: int = 50
    top_p: float = 1.0
    max_new_tokens: int = 320
    gen_seed: int = 0
    gen_batch_size: int = 64
    ref_prompt: str = "train"
    cache_dir: Optional[str] = None
    negatives_file: Optional[str] = None

    def __post_init__(self):
        for key in ("batch_size", "negatives_per_step", "num_negatives", "max_new_tokens", "gen_batch_size"):
            checks.positive(f"data.{key}", getattr(self, key))
        checks.positive("data.temperature", self.temperature)
        checks.non_negative("data.top_k", self.top_k)
        checks.in_range("data.top_p", self.top_p, 0.0, 1.0, lo_open=True)
        checks.one_of("data.ref_prompt", self.ref_prompt, REF_PROMPTS)
        if self.negatives_per_step > self.num_negatives:
            raise checks.ConfigError(
                f"data.negatives_per_step={self.negatives_per_step} is larger than the negatives generated per prompt "
                f"(data.num_negatives={self.num_negatives}): raise data.num_negatives or lower data.negatives_per_step.")


@schema("data", "dft_toy")
@dataclass
class DFTToyData(PositivesData):
    """The "distractor-habit" toy of spec §5.1: tokens 0..7 and SEP (vocab 9); prompt (a, b, c, SEP),
    correct answer y* = [(a+b)%8, (b+c)%8, (a+c)%8, (a+b+c)%8], distractor d = [(a+b)%8, (b+c)%8,
    (a-c)%8, (a*b)%8] (shares y*'s first two tokens). The 512 prompts are split by ``split_seed`` into
    ``n_train`` training prompts (positives = y*) and the rest held out (validation: greedy exact match
    and the margin log pi(y*) - log pi(d)). Negatives: 8 samples per training prompt at T 0.7 (no
    top-k) from the base model (`data=dft_toy_base` pretrains one).
    """

    n_train: int = 256
    split_seed: int = 0
    num_negatives: int = 8
    top_k: int = 0
    max_new_tokens: int = 4
    gen_batch_size: int = 512

    def __post_init__(self):
        super().__post_init__()
        checks.in_range("data.n_train", self.n_train, 1, 511)

    def build(self, seed: int):
        from methods.dft.data import ToySource

        return ToySource(self, seed)


@schema("data", "dft_toy_pairs")
@dataclass
class DFTToyPairsData(DFTToyData):
    """`dft_toy` as preference pairs (chosen = y*, rejected = a cached negative; validation: rejected = d)."""

    kind: ClassVar[str] = "preference"


@schema("data", "dft_toy_base")
@dataclass
class DFTToyBaseData:
    """The toy's base-model pretraining data (spec §5.1): all 512 prompts, each answer drawn y* with
    probability ``p_correct`` (0.35) and the distractor d otherwise; labels on the answer only. The
    validation set is the 512 prompts with y* (its loss: the base model's NLL of the right answers)."""

    kind: ClassVar[str] = "tokens"

    p_correct: float = 0.35
    batch_size: int = 32

    def __post_init__(self):
        checks.in_range("data.p_correct", self.p_correct, 0.0, 1.0)
        checks.positive("data.batch_size", self.batch_size)

    def build(self, seed: int):
        from methods.dft.data import ToyBaseSource

        return ToyBaseSource(self, seed)


TEMPLATES = ("zephyr", "alpaca")


@schema("data", "dft_text")
@dataclass
class DFTTextData(PositivesData):
    """Prompts and their chosen answers from a JSON-lines file (UltraFeedback: ``prompt``, ``chosen``;
    spec §4.1), formatted as the official run_dft.py does and tokenized with ``tokenizer``.

    template: ``zephyr`` (``<|system|>\\n{sys}</s>\\n<|user|>\\n{x}</s>\\n<|assistant|>\\n``, answer
      ``{y}</s>\\n`` + eos; the UF runs) or ``alpaca`` (the MetaMathQA prompt, answer ``{y}`` + eos).
    system_prompt: the system message of the negatives' generation prompt only (the training prompt has
      none; spec §2.4: "You are an unhelpful assistant." for UF, none for math).
    max_length / max_prompt_length: tokens per sequence / of the prompt (kept from its end).
    n_train / n_val: the first n rows of train_file / val_file (null: all). val_file's ``rejected``
      answer is the validation distractor (margin log pi(chosen) - log pi(rejected)).
    """

    data_dir: str = "${paths.data_dir}"
    train_file: str = "preference/ultrafeedback_binarized_sample_train1000.jsonl"
    val_file: Optional[str] = "preference/ultrafeedback_binarized_sample_eval200.jsonl"
    prompt_field: str = "prompt"
    answer_field: str = "chosen"
    rejected_field: Optional[str] = "rejected"
    tokenizer: str = "byte"
    template: str = "zephyr"
    system_prompt: Optional[str] = "You are an unhelpful assistant."
    max_length: int = 1024
    max_prompt_length: int = 512
    n_train: Optional[int] = None
    n_val: Optional[int] = None
    batch_size: int = 4

    def __post_init__(self):
        super().__post_init__()
        checks.one_of("data.template", self.template, TEMPLATES)
        checks.positive("data.max_length", self.max_length)
        checks.in_range("data.max_prompt_length", self.max_prompt_length, 1, self.max_length - 1)

    def build(self, seed: int):
        from methods.dft.data import TextSource

        return TextSource(self, seed)


@schema("data", "dft_text_pairs")
@dataclass
class DFTTextPairsData(DFTTextData):
    """`dft_text` as preference pairs (chosen = the positive, rejected = a cached negative)."""

    kind: ClassVar[str] = "preference"
