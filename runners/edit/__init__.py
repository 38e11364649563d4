"""The `edit` runner: knowledge editing through the ``adapter`` slot, trained by the ``optimizer`` slot.

For each batch of ``runner.batch_edits`` requests (1: the official single-edit protocol): a fresh copy of
the model, ``adapter.wrap``, ``runner.num_steps`` steps on the target tokens (RoseLoRA's official
``execute_roselora``, ../shared/papers/roselora.md §2.6), then the edit metrics of EasyEdit
(`runners.edit.metrics`) with the adapter in eval mode, and the density of the weight change the edit
made (the adapter merged into a copy, compared with the base weights over ``adapter.target_modules``).

Why not Lightning here, as the lm runner: an edit is 25 steps on one prompt, repeated on a fresh copy per
edit; a Trainer per edit would cost more than the edit. The loop calls the adapter's hooks in the lm
runner's order (backward, ``on_before_train_step``, ``optimizer.step()``, ``on_train_step``).
Per-edit numbers (one row per edit, ``step`` = its index; NaN where an edit has no such prompts) go to
``metrics.csv`` and W&B, the finished rows to ``checkpoints/last.ckpt`` after each batch (a resumed run
skips them); the means (×100, as EasyEdit reports) come back as ``table/*``.
"""
from __future__ import annotations

import copy
import logging
import math

import torch

log = logging.getLogger(__name__)


def run(cfg, run_dir, objs: dict) -> dict:
    from lightning import seed_everything

    from reprolab.checkpoint import load, save_atomic
    from reprolab.checks import ConfigError
    from reprolab.csvlog import write_rows
    from reprolab.data.editing_config import EditTask
    from reprolab.tracking import init_wandb
    from runners.generate.model import DTYPES, build_tokenizer, load_weights

    runner, roles, model_cfg = objs["runner"], objs["roles"], objs["model"]
    task = runner.task
    if not isinstance(task, EditTask):
        raise ConfigError(f"runner.task is a {type(task).__name__}, not an edit task: pick "
                          "runner/task=edit_facts, edit_counterfact, edit_zsre or edit_knowedit.")
    seed_everything(cfg.seed, workers=True, verbose=False)
    tokenizer = task.tokenizer() or build_tokenizer(runner.tokenizer or model_cfg.hf_id or "byte")
    requests = task.requests(cfg.paths.data_dir)
    model = model_cfg.build(tokenizer.vocab_size)
    if runner.init_from:
        load_weights(model, runner.init_from, "runner.init_from")
    device = runner.device if runner.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    base = model.to(device=device, dtype=DTYPES[runner.dtype]).eval().requires_grad_(False)
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0

    scorer = Scorer(base, tokenizer, pad, runner.score_batch_size, task.single_token_targets)
    pre = [scorer.before(r) for r in requests]
    rows = load(run_dir.last_ckpt)["rows"] if run_dir.resuming else []  # the edits a previous attempt finished
    if rows:
        log.info(f"resumed after {len(rows)} edits from {run_dir.last_ckpt}")
    wandb = init_wandb(cfg, run_dir)
    for start in range(len(rows), len(requests), runner.batch_edits):
        batch = list(range(start, min(start + runner.batch_edits, len(requests))))
        edited, steps, loss = edit(base, roles, [pre[i]["target"] for i in batch], pad, runner)
        density = delta_density(base, edited, roles.adapter)
        new = [{"step": i, "steps": steps, "final_loss": loss, "delta_density": density,
                **scorer.after(edited, requests[i], pre[i], runner.fluency_tokens),
                **{k: v for k, v in pre[i].items() if k.startswith("pre_")}} for i in batch]
        rows += [{k: math.nan if v is None else v for k, v in r.items()} for r in new]
        save_atomic({"rows": rows}, run_dir.last_ckpt)
        write_rows(run_dir.path / "metrics.csv", list(rows[0]), rows)
        for r in new if wandb is not None else ():
            wandb.log({k: v for k, v in r.items() if k != "step" and v is not None}, step=r["step"])
        log.info(f"edits {batch[0]}..{batch[-1]}: {steps} steps, loss {loss:.4f}, "
                 f"edit succ {rows[-1]['edit_succ']:.2f}, locality {rows[-1]['locality']:.3f}")
    return summary(rows)


def edit(base, roles, targets, pad, runner):
    """One edit (or a batch of them) on a fresh copy of ``base``; the adapted model in eval mode, the steps
    taken and the last step's loss."""
    from runners.edit.metrics import edit_loss

    model = roles.adapter.wrap(copy.deepcopy(base))
    model.train()
    opt = roles.optimizer.build_optimizer(model)
    for step in range(runner.num_steps):
        loss = edit_loss(model, targets, pad)
        loss.backward()
        roles.adapter.on_before_train_step(model)
        opt.step()
        roles.adapter.on_train_step(model, step, runner.num_steps)
        opt.zero_grad(set_to_none=True)
        if step > runner.early_stop_after and loss.item() < runner.early_stop_loss:
            break
    return model.eval(), step + 1, loss.item()


@torch.no_grad()
def delta_density(base, edited, adapter) -> float:
    """nnz(W_edited − W_base) / numel over the weights of the modules ``adapter.target_modules`` names: the
    density of the update the edit actually wrote (the adapter merged into a copy)."""
    from reprolab.roles.adapter import matches

    merged = adapter.merge(copy.deepcopy(edited))
    after = dict(merged.named_modules())
    nnz = numel = 0
    for name, mod in base.named_modules():
        if any(matches(name, p) for p in adapter.target_modules) and hasattr(mod, "weight"):
            diff = after[name].weight != mod.weight
            nnz, numel = nnz + int(diff.sum()), numel + diff.numel()
    return nnz / numel


class Scorer:
    """Encodes a request's pairs once, scores the base model before and an edited model after."""

    def __init__(self, base, tokenizer, pad, batch_size, single_token):
        self.base, self.tok, self.pad, self.bs, self.single = base, tokenizer, pad, batch_size, single_token

    def pairs(self, request):
        from runners.edit.metrics import encode

        target = encode(self.tok, request.prompt, request.target_new)
        if self.single and target[1] != 1:
            from reprolab.checks import UserError

            raise UserError(f"the edit target {request.target_new!r} of {request.prompt!r} is {target[1]} tokens and "
                            "runner.task.single_token_targets=true scores one: set it to false to score every target "
                            "token (EasyEdit's teacher-forced accuracy), or use single-token targets.")
        return {"target": target,
                "rephrase": [encode(self.tok, p, request.target_new) for p in request.rephrase],
                "locality": [encode(self.tok, p, a) for p, a in request.locality],
                "portability": [encode(self.tok, p, a) for p, a in request.portability]}

    def before(self, request) -> dict:
        from runners.edit.metrics import accuracy, encode, predictions

        enc = self.pairs(request)
        enc["locality_pre"] = predictions(self.base, enc["locality"], self.pad, self.bs)
        enc["pre_edit_succ"] = accuracy(predictions(self.base, [enc["target"]], self.pad, self.bs), [enc["target"]])[0]
        enc["pre_locality_truth"] = _mean(accuracy(enc["locality_pre"], enc["locality"]))
        enc["pre_truth"] = None
        if request.ground_truth is not None:
            truth = [encode(self.tok, request.prompt, request.ground_truth)]
            enc["pre_truth"] = accuracy(predictions(self.base, truth, self.pad, self.bs), truth)[0]
        return enc

    def after(self, model, request, enc, fluency_tokens) -> dict:
        from runners.edit.metrics import accuracy, agreement, predictions

        def acc(pairs):
            return _mean(accuracy(predictions(model, pairs, self.pad, self.bs), pairs)) if pairs else None

        out = {"edit_succ": acc([enc["target"]]), "generalization": acc(enc["rephrase"]),
               "portability": acc(enc["portability"]),
               "locality": _mean(agreement(predictions(model, enc["locality"], self.pad, self.bs), enc["locality_pre"]))
               if enc["locality"] else None}
        if fluency_tokens:
            out["fluency"] = fluency(model, self.tok, request.prompt, fluency_tokens)
        return out


@torch.no_grad()
def fluency(model, tokenizer, prompt: str, n_tokens: int) -> float:
    """n-gram entropy (×100) of a greedy continuation of ``prompt`` (EasyEdit's fluency)."""
    from runners.edit.metrics import ngram_entropy

    ids = torch.tensor([tokenizer.encode(prompt)], device=next(model.parameters()).device)
    out = model.generate(ids, max_new_tokens=n_tokens, do_sample=False, pad_token_id=tokenizer.pad_id or 0)
    return 100 * ngram_entropy(tokenizer.decode(out[0, ids.shape[1]:].tolist()))


def _mean(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return sum(xs) / len(xs) if xs else None


def summary(rows) -> dict:
    """Means over edits (×100 for the EasyEdit metrics); metrics no edit had are left out."""
    out = {"table/edits": len(rows)}
    for key in ("edit_succ", "generalization", "locality", "portability", "fluency", "pre_edit_succ", "pre_truth",
                "pre_locality_truth"):
        m = _mean([r.get(key) for r in rows])
        if m is not None:
            out[f"table/{key}"] = m if key == "fluency" else 100 * m
    out["table/delta_density"] = _mean([r["delta_density"] for r in rows])
    out["table/steps"] = _mean([r["steps"] for r in rows])
    return out
