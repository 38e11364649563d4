"""The `lmeval` runner: lm-evaluation-harness tasks on a model of the ``model`` group (pretrained, or an lm
run's checkpoint), with the optional ``temperature`` slot applied (TempNet: logits / tau in every request).
Writes ``lmeval.json`` (the harness's results) and ``metrics.csv`` in the run folder; returns ``table/*``."""
from __future__ import annotations

import csv
import json
import logging

log = logging.getLogger(__name__)
ACCURACY_TASKS = ("piqa", "hellaswag", "arc_easy", "arc_challenge", "openbookqa")
# DFT's UltraFeedback table (../shared/papers/dft.md §4.1): MMLU, TruthfulQA mc2, HellaSwag acc_norm, Winogrande,
# GSM8K strict-match, ARC-Challenge acc_norm, IFEval prompt-level strict; its Avg. is their plain mean
DFT_UF_COLUMNS = ("mmlu", "truthfulqa_mc2", "hellaswag_norm", "winogrande", "gsm8k", "arc_challenge_norm",
                  "ifeval_prompt_strict")
# generation tasks: (harness task, its metric key) -> our name
GENERATED = {("gsm8k", "exact_match,strict-match"): "gsm8k",
             ("ifeval", "prompt_level_strict_acc,none"): "ifeval_prompt_strict",
             ("ifeval", "prompt_level_loose_acc,none"): "ifeval_prompt_loose",
             ("ifeval", "inst_level_strict_acc,none"): "ifeval_inst_strict",
             ("ifeval", "inst_level_loose_acc,none"): "ifeval_inst_loose"}


def summarize(results: dict) -> dict:
    """The harness's per-task results -> ``table/*``: accuracies in %, the two perplexities, the average."""
    out = {}
    for task, metrics in results.items():
        if "acc,none" in metrics:
            out[f"table/{task}"] = 100 * metrics["acc,none"]
        if "acc_norm,none" in metrics:
            out[f"table/{task}_norm"] = 100 * metrics["acc_norm,none"]
    if "perplexity,none" in results.get("lambada_openai", {}):
        out["table/lambada_ppl"] = results["lambada_openai"]["perplexity,none"]
    if "word_perplexity,none" in results.get("wikitext", {}):
        out["table/wikitext_ppl"] = results["wikitext"]["word_perplexity,none"]
    if all(f"table/{t}" in out for t in ACCURACY_TASKS):
        out["table/avg"] = sum(out[f"table/{t}"] for t in ACCURACY_TASKS) / len(ACCURACY_TASKS)
    for (task, key), name in GENERATED.items():
        if key in results.get(task, {}):
            out[f"table/{name}"] = 100 * results[task][key]
    if all(f"table/{c}" in out for c in DFT_UF_COLUMNS):
        out["table/avg_dft_uf"] = sum(out[f"table/{c}"] for c in DFT_UF_COLUMNS) / len(DFT_UF_COLUMNS)
    return out


def shot_groups(tasks: list[str], num_fewshot, fewshot: dict) -> list[tuple[list[str], int | None]]:
    """``tasks`` grouped by shot count (``fewshot[task]``, else ``num_fewshot``), in their first appearance order:
    one harness call per group."""
    groups: dict = {}
    for task in tasks:
        groups.setdefault(fewshot.get(task, num_fewshot), []).append(task)
    return [(names, shots) for shots, names in groups.items()]


def run(cfg, run_dir, objs: dict) -> dict:
    import torch

    from reprolab.lmeval import evaluate
    from reprolab.tracking import init_wandb
    from runners.generate.model import build_model, build_tokenizer

    runner, model_cfg = objs["runner"], objs["model"]
    torch.manual_seed(cfg.seed)
    device = runner.device if runner.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = build_tokenizer(runner.tokenizer or (model_cfg.hf_id if model_cfg.pretrained else "byte"))
    model = build_model(model_cfg, runner.checkpoint, tokenizer.vocab_size, runner.dtype, device,
                        objs["roles"].temperature)
    wandb_run = init_wandb(cfg, run_dir)
    results = {}
    for tasks, shots in shot_groups(list(runner.tasks), runner.num_fewshot, dict(runner.fewshot)):
        res = evaluate(model, tokenizer, tasks, device, limit=runner.limit, include_path=runner.include_path,
                       num_fewshot=shots)
        results.update(res["results"])
    (run_dir.path / "lmeval.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    out = summarize(results)
    with open(run_dir.path / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["metric", "value"])
        w.writerows(sorted(out.items()))
    if wandb_run is not None:
        wandb_run.log({k.replace("table/", "eval/"): v for k, v in out.items()})
    log.info(" ".join(f"{k}={v:.4g}" for k, v in out.items()))
    return out
