"""Schema of the `generate` runner: which model, which task, how to decode and what to compare."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import runners.generate.tasks.config  # noqa: F401  (registers the task schemas)
from reprolab import checks
from reprolab.registry import schema
from reprolab.slots import Slot
from runners.generate.sampling import Sampling

DTYPES = ("float32", "float16", "bfloat16")


@dataclass
class Rescale:
    """Function-preserving KV outlier planting (`runners.generate.rescale`; GEAR §5.1-B).
    alpha: the factor (1 = off); pairs: RoPE channel pairs scaled per KV head; seed: which ones."""

    alpha: float = 1.0
    pairs: int = 2
    seed: int = 0

    def __post_init__(self):
        checks.positive("runner.rescale.alpha", self.alpha)
        checks.positive("runner.rescale.pairs", self.pairs)


@schema("runner", "generate")
@dataclass
class GenerateRunner:
    """Inference-time evaluation of a decoder with a pluggable KV cache (``method``: a `CacheMethod`).

    task: the task config (``runner/task=<name>``: gsm8k, aqua, bbh, perplexity, recall; recall_qa, qa_squad,
      qa_nq_swap, qa_hotpot carry highlightable context sentences for the steering slot).
    checkpoint: a run folder of the lm runner (its checkpoints/last.ckpt) or a .ckpt file; the model
      group must describe the same architecture. None: ``model.pretrained`` or random init. Run folder
      names contain '=' and ',': quote them on the command line, runner.checkpoint="'logs/x/a=1,b=2'".
    tokenizer: ``byte`` or an HF id; None takes ``model.hf_id`` for pretrained models, else byte.
      Ignored by tasks with their own token ids (recall).
    dtype / device: the model's (``auto``: cuda if available). The caches compress in fp32 and store fp16.
    batch_size: prompts decoded together (left-padded).
    reference: also decode with an fp16 DynamicCache in lockstep, for agreement and per-step KL.
    rescale: plant KV channel outliers before decoding (alpha = 1: off).
    label: a free name of what is evaluated (the paper tables' rows match it, e.g. dft for a DFT-finetuned model).
    sampling: how the free run (and the lockstep reference, with the same per-example seeds) chooses
      tokens (`runners.generate.sampling.Sampling`; default greedy). max_new_tokens null: the task's budget.
      One sample per example (tasks score one generation).
    """

    # steering: PASTA on the task's highlighted spans, or AutoPASTA's own (`runners.generate.highlight`),
    # composed with the KV cache in one attention hook (`reprolab.models.attention.install`).
    slots: ClassVar[dict] = {"kv_cache": Slot(required=True), "steering": Slot(), "temperature": Slot()}
    _target_: str = "runners.generate.run"
    task: Any = None
    label: str = ""
    checkpoint: Optional[str] = None
    tokenizer: Optional[str] = None
    dtype: str = "float32"
    device: str = "auto"
    batch_size: int = 1
    reference: bool = True
    rescale: Rescale = field(default_factory=Rescale)
    sampling: Sampling = field(default_factory=Sampling)

    def __post_init__(self):
        checks.one_of("runner.dtype", self.dtype, DTYPES)
        checks.positive("runner.batch_size", self.batch_size)
        if self.sampling.num_samples != 1:
            raise checks.ConfigError(f"runner.sampling.num_samples={self.sampling.num_samples}: the generate runner scores "
                                     "one generation per example; set runner.sampling.num_samples=1 (several samples "
                                     "per prompt: runners.generate.sampling.generate).")
        if self.task is None:
            raise checks.ConfigError("runner.task is unset: pick one with runner/task=<gsm8k|aqua|bbh|perplexity|recall>.")
        refuse_edit_task(self.task, "runner.task")


def refuse_edit_task(task, key: str) -> None:
    """An edit task (the `task` group's edit_*) is scored by the edit runner alone: say so for ``key``."""
    from reprolab.data.editing_config import EditTask

    if isinstance(task, EditTask):
        raise checks.ConfigError(f"{key} is the edit task {type(task).__name__}, which only the edit runner scores: run "
                                 "edit tasks with runner=edit (e.g. experiment=roselora_facts_edit), or pick a generate "
                                 "task with runner/task=<gsm8k|aqua|bbh|perplexity|recall|llm_adapters>.")
