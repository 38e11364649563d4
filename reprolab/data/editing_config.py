"""Schemas of the knowledge-editing data: the synthetic fact world as LM training data (``data=facts``) and
the edit tasks of the `edit` runner (``runner/task=edit_facts|edit_counterfact|edit_zsre|edit_knowedit``).
Registered by `runners.edit.config`; the loaders are `reprolab.data.editing`."""
from __future__ import annotations

from dataclasses import dataclass
from reprolab import checks
from reprolab.data.config import LMData
from reprolab.registry import schema


@dataclass
class WorldSizes:
    """The fact world (`reprolab.data.editing.FactWorld`): sizes and the seed that draws its objects."""

    n_subjects: int = 200
    n_relations: int = 10
    n_objects: int = 100
    world_seed: int = 0

    def check(self, node: str) -> None:
        for key in ("n_subjects", "n_relations", "n_objects"):
            checks.positive(f"{node}.{key}", getattr(self, key))
        if self.n_objects < 2:
            raise checks.ConfigError(f"{node}.n_objects={self.n_objects}: an edit moves a fact to another object, "
                                     "so the world needs at least 2.")

    def world(self):
        from reprolab.data.editing import FactWorld

        return FactWorld(self.n_subjects, self.n_relations, self.n_objects, self.world_seed)


@schema("data", "facts")
@dataclass
class FactsData(WorldSizes, LMData):
    """Pretraining on the fact world (RoseLoRA's CPU analog, ../shared/papers/roselora.md §5.1): 200
    subjects × 10 relations = 2,000 single-token facts in two templates; labels on the object only.
    val_sequences: facts of the main template in the validation set (2,000 = all of them)."""

    seq_len: int = 7
    batch_size: int = 256
    val_sequences: int = 2000

    def __post_init__(self):
        super().__post_init__()
        self.check("data")

    def build(self, seed: int):
        from reprolab.data.editing import FactsSource

        return FactsSource(self, seed)


@dataclass
class EditTask:
    """What every edit task has.

    num_edits: edit requests taken (the first ones of the file; the fact world draws them).
    single_token_targets: the task scores one target token (RoseLoRA's CPU analog); a target that
      tokenises to several tokens is then an error naming the edit. False: every target token is scored
      (EasyEdit's teacher-forced token accuracy, averaged over the target's tokens).
    """

    num_edits: int = 50
    single_token_targets: bool = False

    def __post_init__(self):
        checks.positive("runner.task.num_edits", self.num_edits)

    def tokenizer(self):
        """The task's own tokenizer, or None: the model's (``model.hf_id``)."""
        return None


@schema("task", "edit_facts")
@dataclass
class EditFacts(WorldSizes, EditTask):
    """Edits of the fact world a model learnt with ``data=facts`` (same sizes and world_seed): each edit moves
    one fact to another object; generalisation = the paraphrase template; locality = ``num_locality``
    other facts sharing its subject or relation. ``seed`` draws the edited facts. ``counterfactual: false``
    teaches each picked fact its true object instead (fine-tuning a partly trained model on its own world)."""

    single_token_targets: bool = True
    num_locality: int = 200
    seed: int = 0
    counterfactual: bool = True

    def __post_init__(self):
        super().__post_init__()
        self.check("runner.task")
        checks.positive("runner.task.num_locality", self.num_locality)

    def requests(self, data_dir: str):
        return self.world().requests(self.num_edits, self.num_locality, self.seed, self.counterfactual)

    def tokenizer(self):
        return self.world().tokenizer


@schema("task", "edit_counterfact")
@dataclass
class EditCounterFact(EditTask):
    """CounterFact (MEND/EasyEdit flattened form, ../shared/data/editing, read in place): one rephrase and one
    neighbourhood prompt per edit (SOURCES.md §6)."""

    file: str = "editing/counterfact_edit_1k.json"

    def requests(self, data_dir: str):
        from reprolab.data.editing import counterfact
        from reprolab.data.text import resolve_data_file

        return counterfact(resolve_data_file(data_dir, self.file), self.num_edits)


@schema("task", "edit_zsre")
@dataclass
class EditZsRE(EditTask):
    """zsRE (MEND form; the 1k sample is from the *train* edit split, SOURCES.md §6): question, new answer,
    a rephrased question, an NQ question for locality."""

    file: str = "editing/zsre_mend_train_1k.json"

    def requests(self, data_dir: str):
        from reprolab.data.editing import zsre
        from reprolab.data.text import resolve_data_file

        return zsre(resolve_data_file(data_dir, self.file), self.num_edits)


@schema("task", "edit_knowedit")
@dataclass
class EditKnowEdit(EditTask):
    """KnowEdit (Zhang et al. 2024, HF ``zjunlp/KnowEdit``), the benchmark of RoseLoRA's Table 1: ``file`` is
    one JSON of the dataset repo (e.g. ``benchmark/ZsRE/ZsRE-test-all.json``,
    ``benchmark/wiki_counterfact/test_cf.json``, ``benchmark/wiki_recent/recent_test.json``,
    ``benchmark/WikiBio/wikibio-test-all.json``); needs the hub or a local HF cache."""

    hf_id: str = "zjunlp/KnowEdit"
    file: str = "benchmark/ZsRE/ZsRE-test-all.json"
    num_edits: int = 1000

    def requests(self, data_dir: str):
        from reprolab import hub
        from reprolab.data.editing import knowedit

        rows = hub.load_dataset("json", None, data_files=f"hf://datasets/{self.hf_id}/{self.file}", split="train",
                                instead="edit the local samples instead: runner/task=edit_zsre or edit_counterfact.")
        return knowedit(list(rows), self.num_edits)
