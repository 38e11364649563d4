from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

from methods.pasta.config import PASTAConfig, check_heads_fit, load_heads
from reprolab import checks
from reprolab.registry import schema

log = logging.getLogger(__name__)
IDENTIFY = ("auto", "prompt", "attention", "probe")
APPLY = ("steer", "append")


@schema("steering", "autopasta")
@dataclass
class AutoPASTAConfig(PASTAConfig):
    """AutoPASTA: Zhang, Yu et al., "Model Tells Itself Where to Attend: Faithfulness Meets Automatic
    Attention Steering", arXiv:2409.10790 (spec ../shared/papers/autopasta.md §2.2-2.4).

    Per example: (1) the model names the key sentence (``identify``: ``prompt``, greedy, at most
    ``key_tokens`` tokens, the paper; or ``attention``: its ``identify_head`` [layer, head] looks at it,
    the CPU analog of spec §5.1; an empty ``identify_head`` is chosen on the profiling examples;
    ``probe``: the sentence from which, alone, the model answers most confidently;
    ``auto``: prompt when the task is text, else probe; `methods.autopasta.identify`);
    (2) the text is mapped to the ``top_m`` most similar context sentences (``encoder``:
    `methods.autopasta.mapping`); below ``min_similarity`` the example falls back to direct prompting
    (counted: ``table/fallback``; stage-1 precision, the share of examples whose key sentence is gold:
    ``table/key_precision``); (3) the normal answer prompt is decoded with PASTA (alpha, heads, the
    fields of `PASTAConfig`) on those sentences. ``apply=append`` is the iterative-prompting baseline
    instead: the identified sentence repeated before the question, nothing steered.

    Heads: ``heads`` if given; else ``heads_file`` if it exists; else coarse-to-fine profiling on the
    task's held-out examples (`methods.autopasta.profile`: each layer's heads together, then each head of
    the ``top_layers`` best layers, then the best top-k set for k in ``head_counts``), with the highlights
    of stages 1-2 (``profile_highlight=auto``) or the gold sentences (``oracle``), saved to
    ``heads_file`` (per model, reusable on other tasks: the paper's cross-domain heads).
    Paper: alpha = 1/100 (delta = log 100, §8.1), one key sentence (top_m = 1); K_L, k and the profiling
    size are not given (spec §8.3).
    """

    identity: ClassVar[dict] = {"alpha": 1.0, "heads": [[0, 0], [0, 1], [1, 3]]}
    identify: str = "auto"
    identify_head: list[int] = field(default_factory=list)
    key_tokens: int = 100
    top_m: int = 1
    encoder: str = "lexical"
    min_similarity: float = 0.1
    apply: str = "steer"
    top_layers: int = 1
    head_counts: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    profile_highlight: str = "auto"

    def __post_init__(self):
        super().__post_init__()
        checks.one_of("method.identify", self.identify, IDENTIFY)
        checks.one_of("method.apply", self.apply, APPLY)
        checks.one_of("method.profile_highlight", self.profile_highlight, ("auto", "oracle"))
        for key in ("key_tokens", "top_m", "top_layers"):
            checks.positive(f"method.{key}", getattr(self, key))
        for k in self.head_counts:
            checks.positive("method.head_counts[]", k)
        checks.in_range("method.min_similarity", self.min_similarity, 0.0, 1.0)
        if self.identify_head and (len(self.identify_head) != 2 or min(self.identify_head) < 0):
            raise checks.ConfigError(f"method.identify_head={list(self.identify_head)}: give [layer, head] (or [] to "
                                     "choose it on the profiling examples).")

    def check_model(self, model_config) -> None:
        super().check_model(model_config)
        if self.identify_head:
            layer, head = self.identify_head
            check_heads_fit({layer: [head]}, model_config)

    # ---- once per run: the identify head and the steered heads -----------------------------------
    def setup(self, model, task, tokenizer, decoder) -> None:
        if not hasattr(task, "profile"):
            raise checks.ConfigError(f"steering=autopasta needs a task with context sentences (runner/task=recall_qa or "
                                     f"qa_squad, qa_nq_swap, qa_hotpot), not {type(task).__name__}.")
        if self.identify == "prompt" and not task.text:
            raise checks.ConfigError("steering.identify=prompt asks the model for the key sentence in words, and this "
                                     "task has no text: use steering.identify=attention.")
        if self.identify == "auto":
            self.identify = "prompt" if task.text else "probe"
        path = Path(self.heads_file) if self.heads_file else None
        if path is not None and path.is_file():
            saved = json.loads(path.read_text())
            self.use_heads(load_heads(self.heads_file))
            self.identify_head = self.identify_head or saved.get("identify_head") or []
            check_heads_fit(self._by_layer, model.config)
            if self.identify != "attention" or self.identify_head:
                return
        profile_set = task.profile(tokenizer)
        record: dict = {"model": model.config.name_or_path or type(model).__name__, "task": type(task).__name__,
                        "profile_examples": len(profile_set), "alpha": self.alpha}
        if self.identify == "attention" and not self.identify_head:
            from methods.autopasta.identify import best_identify_head

            self.identify_head, precision = best_identify_head(model, profile_set, decoder.pad, decoder.device,
                                                               decoder.batch_size)
            record.update(identify_head=self.identify_head, identify_precision=precision)
            log.info(f"identify head {self.identify_head}: precision {precision:.3f} on {len(profile_set)} held-out examples")
        if not self.heads and self.apply == "steer":
            record.update(self._profile(model, task, tokenizer, profile_set, decoder))
        record["heads"] = self._by_layer  # the official head-config format {layer: [ids]}
        if path is not None and not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(record, indent=1))
            log.info(f"heads saved to {path}")

    def _profile(self, model, task, tokenizer, examples, decoder) -> dict:
        from methods.autopasta.profile import coarse_to_fine, select

        if self.profile_highlight == "auto":
            examples, _ = self.prepare(model, task, tokenizer, examples, decoder)

        def score(heads) -> float:
            self.use_heads(heads)
            out = decoder.generate(examples, task.new_tokens(), lambda t: task.is_done(tokenizer, t))
            return sum(task.score(tokenizer, e, g)["correct"] for e, g in zip(examples, out)) / len(examples)

        cfg = model.config
        profile = coarse_to_fine(score, cfg.num_hidden_layers, cfg.num_attention_heads, self.top_layers)
        self.use_heads(select(profile, score, self.head_counts))
        log.info(f"profiled heads {self.heads} ({profile.evaluations} + {len(profile.candidates)} evaluations)")
        return {"profile": profile.to_json()}

    # ---- per batch: stages 1 and 2 ---------------------------------------------------------------
    def prepare(self, model, task, tokenizer, batch, decoder):
        chosen = self.identify_sentences(model, task, tokenizer, batch, decoder)
        out, hits, mapped = [], 0, 0
        for e, idx in zip(batch, chosen):
            if idx is None:  # stage 2 found no sentence: direct prompting
                out.append(replace(e, meta={**e.meta, "highlight": None}))
                continue
            mapped += 1
            hits += any(i in e.meta["gold"] for i in idx)
            if self.apply == "append":
                out.append(task.with_key(tokenizer, e, idx[0]))
            else:
                out.append(replace(e, meta={**e.meta, "highlight": [e.meta["sentences"][i] for i in idx]}))
        n = len(batch)
        return out, {"key_precision": hits / n, "fallback": (n - mapped) / n}

    def identify_sentences(self, model, task, tokenizer, batch, decoder) -> list:
        """Each example's key sentence indices (stages 1 and 2), or None when none could be mapped."""
        if self.identify == "attention":
            from methods.autopasta.identify import attention_choice

            layer, head = self.identify_head
            return [[i] for i in attention_choice(model, batch, decoder.pad, decoder.device, layer, head)]
        if self.identify == "probe":
            from methods.autopasta.identify import probe_choice

            return [[i] for i in probe_choice(model, task, tokenizer, batch, decoder.pad, decoder.device,
                                              decoder.batch_size)]
        from methods.autopasta.mapping import map_to_sentences
        from runners.generate.tasks.base import Example

        prompts = [Example(task.key_prompt(tokenizer, e)) for e in batch]
        texts = decoder.generate(prompts, self.key_tokens, lambda t: task.is_done(tokenizer, t), steer=False)
        out = []
        for e, ids in zip(batch, texts):
            text = task.answer_text(tokenizer, ids)
            sentences = [task.sentence_text(e, i) for i in range(len(e.meta["sentences"]))]
            out.append(map_to_sentences(text, sentences, self.top_m, self.encoder, self.min_similarity))
        return out
