"""The `lmeval` runner: lm-evaluation-harness tasks on a model of the ``model`` group (pretrained, or an lm
run's checkpoint), with the optional ``temperature`` slot applied (TempNet: logits / tau in every request).
Writes ``lmeval.json`` (the harness's results) and ``metrics.csv`` in the run folder; returns ``table/*``."""
from __future__ import annotations

import csv
import json
import logging

log = logging.getLogger(__name__)
ACCURACY_TASKS = ("piqa", "hellaswag", "arc_easy", "arc_challenge", "openbookqa")


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
    return out


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
    res = evaluate(model, tokenizer, list(runner.tasks), device, limit=runner.limit, include_path=runner.include_path,
                   num_fewshot=runner.num_fewshot)
    (run_dir.path / "lmeval.json").write_text(json.dumps(res["results"], indent=2, default=str) + "\n")
    out = summarize(res["results"])
    with open(run_dir.path / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["metric", "value"])
        w.writerows(sorted(out.items()))
    if wandb_run is not None:
        wandb_run.log({k.replace("table/", "eval/"): v for k, v in out.items()})
    log.info(" ".join(f"{k}={v:.4g}" for k, v in out.items()))
    return out
