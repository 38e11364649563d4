from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional


@dataclass
class Example:
    """prompt: token ids. continuation: forced tokens (``score`` tasks). target: the gold answer."""

    prompt: list[int]
    continuation: Optional[list[int]] = None
    target: Any = None
    meta: dict = field(default_factory=dict)


@dataclass
class Task(ABC):
    """Base of every task schema. ``max_examples``: evaluate the first N examples (None: all).
    ``batch_size``: overrides ``runner.batch_size`` (the official scripts use 6 for GSM8K/AQuA, 4 for BBH)."""

    mode: ClassVar[str] = "generate"
    max_examples: Optional[int] = None
    max_new_tokens: int = 256
    batch_size: Optional[int] = None

    @property
    def own_vocab(self) -> Optional[int]:
        """Vocabulary size when the task speaks its own token ids (no tokenizer), else None."""
        return None

    def new_tokens(self) -> int:
        """How many tokens to generate at most (``generate`` tasks)."""
        return self.max_new_tokens

    @abstractmethod
    def examples(self, tokenizer) -> list[Example]:
        """The evaluation examples, tokenised."""

    def is_done(self, tokenizer, generated: list[int]) -> bool:
        """Stop generating this example early (e.g. the model started the next exemplar)."""
        return False

    def score(self, tokenizer, example: Example, generated: list[int]) -> dict[str, float]:
        """Per-example metrics of a ``generate`` task; ``correct`` is averaged into ``accuracy``."""
        raise TypeError(f"{type(self).__name__} is a {self.mode} task and scores no generations")

    def accuracy(self, examples: list[Example], correct: list[float]) -> float:
        """The task's accuracy from per-example ``correct`` (the mean; BBH averages its subtasks)."""
        return sum(correct) / len(correct)

    def breakdown(self, examples: list[Example], correct: list[float]) -> dict[str, float]:
        """Per-part accuracies reported beside ``accuracy`` as ``accuracy_<part>`` (e.g. per test set); none by default."""
        return {}

    def _take(self, items: list) -> list:
        return items if self.max_examples is None else items[: self.max_examples]
