"""Typed schemas of the `data` group. Each ``build(seed)`` returns a `reprolab.data.source.Source`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

from reprolab import checks
from reprolab.registry import schema


@dataclass
class LMData:
    """Fields every LM source shares.

    seq_len: tokens the model sees per sequence (each sequence carries seq_len labels).
    batch_size: sequences per step per device (micro-batch; see trainer.accumulate_grad_batches).
    val_sequences: size of the fixed validation set (sequences of seq_len + 1 tokens).
    ``kind``: the batches the source yields (an objective's ``data_kind``).
    """

    kind: ClassVar[str] = "tokens"

    seq_len: int = 64
    batch_size: int = 32
    val_sequences: int = 256

    def __post_init__(self):
        checks.positive("data.seq_len", self.seq_len)
        checks.positive("data.batch_size", self.batch_size)
        checks.positive("data.val_sequences", self.val_sequences)


@schema("data", "markov")
@dataclass
class MarkovData(LMData):
    """Synthetic text from a random sparse order-k Markov chain (see `reprolab.data.markov`).

    The chain is fixed by ``chain_seed`` (the task); the run's ``seed`` drives the train batches.
    """

    vocab_size: int = 256
    order: int = 2
    support: int = 4
    concentration: float = 1.0
    chain_seed: int = 1234

    def __post_init__(self):
        super().__post_init__()
        checks.positive("data.vocab_size", self.vocab_size)
        checks.positive("data.order", self.order)
        checks.in_range("data.support", self.support, 1, self.vocab_size)
        checks.positive("data.concentration", self.concentration)
        if self.seq_len < self.order:
            raise checks.ConfigError(f"data.seq_len={self.seq_len} must be >= data.order={self.order}.")

    def build(self, seed: int):
        from reprolab.data.markov import MarkovSource

        return MarkovSource(self, seed)


@schema("data", "markov_teacher")
@dataclass
class MarkovTeacherData(LMData):
    """A first-order Markov teacher with heterogeneous entropy (`reprolab.data.markov_teacher`; TempNet's
    CPU analog, ../shared/papers/tempnet.md §5: V = 64, per-context teacher temperature log-uniform in
    [0.1, 3], sequences of 64). The chain is fixed by ``chain_seed``; the run's ``seed`` drives the train batches.
    train_sequences: null streams fresh sequences (the spec's 20k sequences are about one pass of its 1500
      steps); a number trains on that fixed set of sequences (drawn from ``chain_seed``), in epochs: a small
      one over-fits, the over-confident LM of spec §5's frozen-model variant.
    """

    vocab_size: int = 64
    t_min: float = 0.1
    t_max: float = 3.0
    chain_seed: int = 0
    train_sequences: Optional[int] = None

    def __post_init__(self):
        super().__post_init__()
        checks.positive("data.vocab_size", self.vocab_size)
        checks.positive("data.t_min", self.t_min)
        checks.positive("data.t_max", self.t_max)
        if self.t_min > self.t_max:
            raise checks.ConfigError(f"data.t_min={self.t_min} > data.t_max={self.t_max}: swap them.")
        if self.train_sequences is not None and self.train_sequences < self.batch_size:
            raise checks.ConfigError(f"data.train_sequences={self.train_sequences} is below data.batch_size="
                                     f"{self.batch_size}: a step needs a batch; raise it (or null for a fresh stream).")

    def build(self, seed: int):
        from reprolab.data.markov_teacher import MarkovTeacherSource

        return MarkovTeacherSource(self, seed)


@schema("data", "text")
@dataclass
class TextData(LMData):
    """Local text files, read from ``data_dir`` (``paths.data_dir`` by default).

    tokenizer: ``byte`` | ``char`` | an HF tokenizer id.
    val_files: explicit validation files; if empty, the last ``val_fraction`` of train is held out.
    """

    data_dir: str = "${paths.data_dir}"
    train_files: list[str] = field(default_factory=list)
    val_files: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    tokenizer: str = "char"

    def __post_init__(self):
        super().__post_init__()
        if not self.train_files:
            raise checks.ConfigError("data.train_files is empty: name at least one file under paths.data_dir.")
        checks.in_range("data.val_fraction", self.val_fraction, 0.0, 1.0, lo_open=True, hi_open=True)

    def build(self, seed: int):
        from reprolab.data.text import TextSource

        return TextSource(self, seed)


@schema("data", "hf")
@dataclass
class HFData(LMData):
    """An HF dataset streamed with ``datasets.load_dataset(hf_path, hf_name, streaming=True)``.

    data_files: for builders over local files (``hf_path: text``): {split: [files under data_dir]}.
    packing: concatenate documents into full windows instead of truncating + padding each one.
    """

    hf_path: str = "allenai/c4"
    hf_name: Optional[str] = "en"
    data_dir: str = "${paths.data_dir}"
    data_files: Optional[dict[str, list[str]]] = None
    train_split: str = "train"
    val_split: str = "validation"
    text_field: str = "text"
    tokenizer: str = "t5-base"
    shuffle_seed: int = 42
    shuffle_buffer: int = 10_000
    packing: bool = False

    def build(self, seed: int):
        from reprolab.data.hf import HFSource

        return HFSource(self, seed)




@schema("data", "recall")
@dataclass
class RecallData(LMData):
    """Synthetic key:value recall (`reprolab.data.recall`): P distinct (key, value) pairs, then all P
    recalled (in reverse or forward order). Labels cover the answer only; the loss floor is 0.

    num_keys / num_values: sizes of the two symbol sets (vocab = 3 + num_keys + num_values).
    order: ``reverse`` (content-addressed lookups) or ``forward`` (also findable by position).
    seq_len must hold a sequence: seq_len >= 4·num_pairs + 2.
    val_seed: seeds the fixed validation set (the generate runner's recall task uses its own seed).
    """

    num_keys: int = 64
    num_values: int = 64
    num_pairs: int = 32
    order: str = "reverse"
    val_seed: int = 1234

    def __post_init__(self):
        super().__post_init__()
        checks.one_of("data.order", self.order, ("reverse", "forward"))
        for key in ("num_keys", "num_values", "num_pairs"):
            checks.positive(f"data.{key}", getattr(self, key))
        if self.num_pairs > min(self.num_keys, self.num_values):
            raise checks.ConfigError(f"data.num_pairs={self.num_pairs} exceeds min(data.num_keys, data.num_values) "
                                     f"(keys and values of a sequence are distinct).")
        need = 4 * self.num_pairs + 2
        if self.seq_len < need:
            raise checks.ConfigError(f"data.seq_len={self.seq_len} is too short: {self.num_pairs} pairs need data.seq_len >= {need}.")

    def build(self, seed: int):
        from reprolab.data.recall import RecallSource

        return RecallSource(self, seed)


@schema("data", "recall_distractors")
@dataclass
class RecallDistractorsData(LMData):
    """Associative recall with distractors (`reprolab.data.qa_recall`, AutoPASTA's CPU analog): N
    sentences ``k v .`` or ``NOT k* v' .``, then ``Q k* EQ`` -> v*. Train on short contexts
    (``min_sentences``..``max_sentences``), ``questions`` questions per sequence (more labels per step); the
    generate runner's ``recall_qa`` task tests longer contexts with one question. ``eq=false``: questions
    ``Q k*`` without EQ (plain induction; see the module docstring). ``resample``: later questions drawn with
    replacement, distractors on the first question's key only (`RecallQATask`).
    """

    num_keys: int = 64
    num_values: int = 64
    min_sentences: int = 2
    max_sentences: int = 6
    distractor_p: float = 0.3
    questions: int = 4
    eq: bool = True
    resample: bool = False
    seq_len: int = 48
    val_seed: int = 1234

    def __post_init__(self):
        super().__post_init__()
        from reprolab.data.qa_recall import RecallQATask

        try:
            need = RecallQATask(self.num_keys, self.num_values, self.min_sentences, self.max_sentences,
                                self.distractor_p, self.questions, self.eq, self.resample).max_len - 1
        except ValueError as e:
            raise checks.ConfigError(f"data.{e}") from None
        if self.seq_len < need:
            raise checks.ConfigError(f"data.seq_len={self.seq_len} is too short: {self.max_sentences} sentences need "
                                     f"data.seq_len >= {need}.")

    def build(self, seed: int):
        from reprolab.data.qa_recall import RecallQASource

        return RecallQASource(self, seed)


@schema("data", "preference_markov")
@dataclass
class PreferenceMarkovData:
    """Preference pairs with a known reward over a sparse Markov chain (`reprolab.data.preference`):
    a prompt of ``prompt_len`` tokens, chosen = its continuation along the chain, rejected = the same
    continuation with each token replaced by a random one with probability ``noise``; a fraction
    ``flip`` of the training labels swapped (the validation pairs are clean).

    batch_size: pairs per step per device; val_pairs: size of the fixed validation set.
    """

    kind: ClassVar[str] = "preference"
    vocab_size: int = 32
    order: int = 2
    support: int = 4
    concentration: float = 1.0
    chain_seed: int = 1234
    prompt_len: int = 16
    response_len: int = 16
    noise: float = 0.5
    flip: float = 0.0
    batch_size: int = 16
    val_pairs: int = 128

    @property
    def seq_len(self) -> int:
        """Tokens the model sees per sequence."""
        return self.prompt_len + self.response_len - 1

    def __post_init__(self):
        for key in ("vocab_size", "order", "prompt_len", "response_len", "batch_size", "val_pairs"):
            checks.positive(f"data.{key}", getattr(self, key))
        checks.in_range("data.support", self.support, 1, self.vocab_size)
        checks.positive("data.concentration", self.concentration)
        checks.in_range("data.noise", self.noise, 0.0, 1.0)
        checks.in_range("data.flip", self.flip, 0.0, 1.0)
        if self.prompt_len < self.order:
            raise checks.ConfigError(f"data.prompt_len={self.prompt_len} must be >= data.order={self.order}: the chain "
                                     "needs a full context before the response starts.")

    def build(self, seed: int):
        from reprolab.data.preference import PreferenceMarkovSource

        return PreferenceMarkovSource(self, seed)


CORRUPTIONS = ("none", "stochastic", "myopic", "irrational", "random", "adversarial")
PAIRINGS = ("fixed", "all_in_batch")


@schema("data", "preference_features")
@dataclass
class PreferenceFeaturesData:
    """Synthetic preference pairs over item features with a known reward, for reward models
    (`reprolab.data.preference_features`; spec ../shared/papers/r3m.md §5.1, defaults from there).

    dim / hidden / truth: items x ~ N(0, I_dim); r*(x) = w2^T tanh(W1^T x) with ``hidden`` units
      (``truth: mlp``), a unit-norm linear w^T x (``linear``) or ``tabular``: ``dim`` items (one-hot) with
      rewards evenly spaced in [-3, 3] (adaptive_pref §5.1 C; a reward model with no hidden layer is a table).
    segment_len: steps per item (a segment's reward sums its steps; myopic labels need > 1, the spec's 10).
    n_train / test_pairs / test_items: 2000 training pairs, 4000 fresh clean test pairs and items.
    corruption (training labels only): ``none``, ``stochastic`` (``temperature`` T, spec grid
      {0.15, 0.3, 0.6}), ``myopic`` (``gamma``, {0.3, 0.5, 0.7}), ``irrational`` (``p``, {1/3, 1/2, 2/3},
      blocks of ``block`` = 64 pairs), ``random`` (``flip_rate``, {0.1, 0.2}), ``adversarial``
      (the top ``flip_rate`` share of pairs by |Delta|).
    env_seed: draws the reward, the items and the labels; null: the run's seed.
    batch_size: pairs per step per device (the spec's 64); with ``pairing: all_in_batch``, items per step.
    standardize: rescale r* so that the training margins have unit std (r3m §5.1); false: the raw r*
      (adaptive_pref §5.1 B states no rescaling).
    pairing: ``fixed`` (the n_train pairs above, epochs over them) or ``all_in_batch`` (the APS robotics
      protocol, ../shared/papers/adaptive_pref.md §2.7 and §5.1 B: each step takes batch_size items of a
      pool of ``pool_items`` and trains on all B(B-1)/2 pairs, the winner the larger true reward).
    bandit_contexts / bandit_candidates: the KL-regularised bandit proxy of adaptive_pref §5.1 B (256
      contexts of 16 fresh candidate items) scored at validation.
    """

    kind: ClassVar[str] = "preference_features"
    dim: int = 10
    hidden: int = 32
    truth: str = "mlp"
    segment_len: int = 1
    n_train: int = 2000
    test_pairs: int = 4000
    test_items: int = 4000
    corruption: str = "none"
    temperature: float = 0.3
    gamma: float = 0.7
    p: float = 0.5
    block: int = 64
    flip_rate: float = 0.1
    env_seed: Optional[int] = None
    batch_size: int = 64
    pairing: str = "fixed"
    standardize: bool = True
    pool_items: int = 8192
    bandit_contexts: int = 256
    bandit_candidates: int = 16

    def __post_init__(self):
        for key in ("dim", "hidden", "segment_len", "n_train", "test_pairs", "test_items", "block", "batch_size",
                    "pool_items", "bandit_contexts", "bandit_candidates"):
            checks.positive(f"data.{key}", getattr(self, key))
        checks.one_of("data.truth", self.truth, ("mlp", "linear", "tabular"))
        checks.one_of("data.corruption", self.corruption, CORRUPTIONS)
        checks.positive("data.temperature", self.temperature)
        checks.in_range("data.gamma", self.gamma, 0.0, 1.0, lo_open=True)
        checks.in_range("data.p", self.p, 0.0, 1.0)
        checks.in_range("data.flip_rate", self.flip_rate, 0.0, 1.0)
        checks.one_of("data.pairing", self.pairing, PAIRINGS)
        if self.pairing == "all_in_batch" and self.corruption != "none":
            raise checks.ConfigError(f"data.pairing=all_in_batch labels every pair by the true reward, and "
                                     f"data.corruption={self.corruption}: set data.corruption=none (the corruption "
                                     "models act on the fixed training pairs of data.pairing=fixed).")
        if self.corruption == "myopic" and self.segment_len < 2:
            raise checks.ConfigError("data.corruption=myopic compares discounted sums over a segment, and "
                                     f"data.segment_len={self.segment_len}: set data.segment_len >= 2 (the spec uses 10).")

    def build(self, seed: int):
        from reprolab.data.preference_features import PreferenceFeaturesSource

        return PreferenceFeaturesSource(self, seed)


@schema("data", "gmm_pairs")
@dataclass
class GMMPairsData:
    """Synthetic paired "image"/"text" vectors from a Gaussian mixture with per-cluster spreads, for
    contrastive dual encoders (`reprolab.data.contrastive`; TempNet's CPU analog,
    ../shared/papers/tempnet.md §5, sizes ours).

    clusters / latent_dim / centre_scale: the mixture in latent space; spread_min / spread_max: each
      cluster's spread, log-uniform (tight clusters hold near-duplicate pairs).
    image_dim / text_dim / noise: the two views, tanh of random linear maps of the latent, plus noise.
    n_train / val_pairs: training pairs (per-sample state is sized by it) and held-out pairs retrieved
      among themselves at validation; batch_size: pairs per step (epochs drop the last partial batch).
    data_seed: draws the task and the pairs; the run's seed orders the epochs.
    """

    kind: ClassVar[str] = "contrastive"
    clusters: int = 32
    latent_dim: int = 16
    centre_scale: float = 1.0
    spread_min: float = 0.05
    spread_max: float = 1.0
    image_dim: int = 32
    text_dim: int = 32
    noise: float = 0.1
    n_train: int = 4096
    val_pairs: int = 1000
    batch_size: int = 128
    data_seed: int = 0

    def __post_init__(self):
        for key in ("clusters", "latent_dim", "image_dim", "text_dim", "n_train", "val_pairs", "batch_size"):
            checks.positive(f"data.{key}", getattr(self, key))
        for key in ("centre_scale", "spread_min", "spread_max"):
            checks.positive(f"data.{key}", getattr(self, key))
        checks.non_negative("data.noise", self.noise)
        if self.spread_min > self.spread_max:
            raise checks.ConfigError(f"data.spread_min={self.spread_min} > data.spread_max={self.spread_max}: swap them.")
        if self.batch_size < 2 or self.val_pairs < 2:
            raise checks.ConfigError(f"data.batch_size={self.batch_size}, data.val_pairs={self.val_pairs}: a contrastive "
                                     "batch needs at least 2 pairs (each pair's negatives are the other pairs).")
        if self.batch_size > self.n_train:
            raise checks.ConfigError(f"data.batch_size={self.batch_size} exceeds data.n_train={self.n_train}.")

    def build(self, seed: int):
        from reprolab.data.contrastive import GMMPairsSource

        return GMMPairsSource(self, seed)


FORMATS = ("hh", "prompt_chosen_rejected", "tldr")


@schema("data", "preference_text")
@dataclass
class PreferenceTextData:
    """Real preference pairs (prompt, chosen, rejected) read with ``datasets.load_dataset(hf_path, hf_name,
    data_files=..., data_dir=hf_data_dir)`` (`reprolab.data.preference_text`): Anthropic HH-RLHF (``format: hh``,
    the prompt split off the two dialogues), UltraFeedback (``prompt_chosen_rejected``), TL;DR comparisons
    (``tldr``). Local files: ``hf_path: json`` and ``data_files`` {split: [files under data_dir]}.

    Truncation (TRL's DPOTrainer policy): a pair longer than ``max_length`` tokens keeps the last
    ``max_prompt_length`` tokens of its prompt, then the first ``max_length - len(prompt)`` of each response.
    bad_pairs: ``drop`` (identical chosen and rejected, an empty response, no shared prompt: left out and
      counted in the log) or ``error``. drop_ties: leave out pairs whose judge scores are equal (UltraFeedback).
    val_split: null holds the last ``val_pairs`` usable pairs of the training split out; otherwise the first
      ``val_pairs`` of that split. train_pairs: the first N usable training pairs (null: all).
    flip: the share of training pairs whose labels are swapped (seeded by ``flip_seed``; recorded per pair),
      the R3M paper's random-flip perturbation. tokenizer: ``byte`` (offline, vocab 256) or the model's HF id.
    batch_size: pairs per step per device.
    """

    kind: ClassVar[str] = "preference"
    seq_len_key: ClassVar[str] = "max_length"  # the field a too-long seq_len names
    hf_path: str = "json"
    hf_name: Optional[str] = None
    hf_data_dir: Optional[str] = None
    data_dir: str = "${paths.data_dir}"
    data_files: Optional[dict[str, list[str]]] = None
    train_split: str = "train"
    val_split: Optional[str] = "test"
    format: str = "hh"
    tokenizer: str = "byte"
    max_length: int = 512
    max_prompt_length: int = 256
    bad_pairs: str = "drop"
    drop_ties: bool = False
    train_pairs: Optional[int] = None
    val_pairs: int = 256
    flip: float = 0.0
    flip_seed: int = 0
    batch_size: int = 16

    @property
    def seq_len(self) -> int:
        """The most tokens a model sees per sequence (prompt + response)."""
        return self.max_length

    def __post_init__(self):
        for key in ("max_length", "max_prompt_length", "val_pairs", "batch_size"):
            checks.positive(f"data.{key}", getattr(self, key))
        if self.train_pairs is not None:
            checks.positive("data.train_pairs", self.train_pairs)
        if self.max_prompt_length >= self.max_length:
            raise checks.ConfigError(f"data.max_prompt_length={self.max_prompt_length} must be below data.max_length="
                                     f"{self.max_length}, so that a truncated pair keeps at least one response token: "
                                     f"e.g. data.max_prompt_length={self.max_length // 2}.")
        checks.one_of("data.format", self.format, FORMATS)
        checks.one_of("data.bad_pairs", self.bad_pairs, ("drop", "error"))
        checks.in_range("data.flip", self.flip, 0.0, 1.0)

    def build(self, seed: int):
        from reprolab.data.preference_text import PreferenceTextSource

        return PreferenceTextSource(self, seed)


@schema("data", "image_text")
@dataclass
class ImageTextData:
    """Image-caption pairs for CLIP-style dual encoders (`reprolab.data.contrastive.ImageTextSource`): CC3M as
    webdataset shards (``pixparse/cc3m-wds``, TempNet's data, ../shared/papers/tempnet.md §2.5: image res 256, text
    max_len 30, batch 256 per GPU), or local shards (``hf_path: webdataset`` with ``data_files``).
    tokenizer: the text tower's (``distilbert-base-uncased``; ``byte`` offline). Images: shorter side resized to
    image_size, centre crop, ImageNet normalisation (the official loop's random-resized-crop augmentation is not
    reproduced). shuffle_buffer: the streaming shuffle; val_pairs: the first pairs of ``val_split``, retrieved
    among themselves at validation.
    """

    kind: ClassVar[str] = "contrastive"
    hf_path: str = "pixparse/cc3m-wds"
    hf_name: Optional[str] = None
    data_files: Optional[dict[str, list[str]]] = None
    train_split: str = "train"
    val_split: str = "validation"
    image_field: str = "jpg"
    text_field: str = "txt"
    tokenizer: str = "distilbert-base-uncased"
    image_size: int = 256
    max_len: int = 30
    batch_size: int = 256
    val_pairs: int = 1000
    shuffle_buffer: int = 10_000

    def __post_init__(self):
        for key in ("image_size", "max_len", "batch_size", "val_pairs", "shuffle_buffer"):
            checks.positive(f"data.{key}", getattr(self, key))
        if self.batch_size < 2 or self.val_pairs < 2:
            raise checks.ConfigError(f"data.batch_size={self.batch_size}, data.val_pairs={self.val_pairs}: a contrastive "
                                     "batch needs at least 2 pairs (each pair's negatives are the other pairs).")

    def build(self, seed: int):
        from reprolab.data.contrastive import ImageTextSource

        return ImageTextSource(self, seed)
