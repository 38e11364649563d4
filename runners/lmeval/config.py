"""Schema of the `lmeval` runner: which model, which lm-evaluation-harness tasks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Optional

from reprolab import checks
from reprolab.registry import schema
from reprolab.slots import Slot

# TempNet's Table 1 (../shared/papers/tempnet.md §4): five zero-shot accuracies, two perplexities.
TABLE1_TASKS = ["piqa", "hellaswag", "arc_easy", "arc_challenge", "openbookqa", "lambada_openai", "wikitext"]
DTYPES = ("float32", "float16", "bfloat16")


@schema("runner", "lmeval")
@dataclass
class LMEvalRunner:
    """Score a causal LM with lm-evaluation-harness (`reprolab.lmeval`; ``pip install '.[eval]'``), its
    temperature slot applied (TempNet's tau divides the logits the harness reads).

    label: a free name of what is evaluated (the paper tables' rows match it, e.g. llama2_7b_tempnet).
    tasks: harness task names (default: TempNet's Table 1). checkpoint: an lm run folder or .ckpt (with the
      TempNet it trained when ``temperature`` is set); null: ``model.pretrained`` (or random init).
    tokenizer: ``byte`` or an HF id; null takes ``model.hf_id`` for pretrained models, else byte.
    limit: examples per task (null: all); num_fewshot: null = each task's default (0 for Table 1's);
    fewshot: per-task shot counts overriding num_fewshot for the tasks it names (DFT's UltraFeedback table:
      MMLU 5, HellaSwag 10, ARC-Challenge 25 ...); the tasks are run in one harness call per shot count.
    include_path: a folder of extra task YAMLs. dtype / device: the model's (``auto``: cuda if available).
    Results: ``table/<task>`` = accuracy in % (``_norm``: length-normalised), ``table/lambada_ppl`` and
    ``table/wikitext_ppl`` (word perplexity), ``table/avg`` = the mean of Table 1's five accuracies;
    ``table/gsm8k`` (strict-match exact match), ``table/ifeval_prompt_strict`` (and ``_loose``, ``ifeval_inst_*``),
    ``table/avg_dft_uf`` = the mean of DFT's seven UltraFeedback columns (`runners.lmeval.DFT_UF_COLUMNS`).
    """

    slots: ClassVar[dict] = {"temperature": Slot()}
    _target_: str = "runners.lmeval.run"
    label: str = ""
    tasks: list[str] = field(default_factory=lambda: list(TABLE1_TASKS))
    checkpoint: Optional[str] = None
    tokenizer: Optional[str] = None
    limit: Optional[int] = None
    num_fewshot: Optional[int] = None
    fewshot: dict[str, int] = field(default_factory=dict)
    include_path: Optional[str] = None
    dtype: str = "float32"
    device: str = "auto"

    def __post_init__(self):
        checks.one_of("runner.dtype", self.dtype, DTYPES)
        if not self.tasks:
            raise checks.ConfigError("runner.tasks is empty: name at least one lm-eval task (e.g. runner.tasks=[piqa]).")
        if self.limit is not None:
            checks.positive("runner.limit", self.limit)
        for task, shots in self.fewshot.items():
            checks.one_of("runner.fewshot key", task, list(self.tasks))
            checks.non_negative(f"runner.fewshot.{task}", shots)
