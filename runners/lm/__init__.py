"""The `lm` runner: train and evaluate a causal LM with Lightning.

Slots (`runners.lm.config.LMRunner.slots`): ``optimizer`` (AdamW when empty), ``objective``
(next-token CE when empty), optional ``adapter`` and ``temperature``; ``kv_cache`` and ``steering``
serve the evaluation after training. Everything else (model, data, hardware, loggers) comes from
its own config groups.
"""
from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)


def run(cfg, run_dir, objs: dict) -> dict:
    """``objs``: the validated config (`reprolab.config.validate`), the plugins in ``objs["roles"]``."""
    import lightning as L
    import torch
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint

    from reprolab.params import optimizer_state_bytes
    from reprolab.tracking import lightning_loggers
    from runners.lm.callbacks import Throughput
    from runners.lm.data import LMDataModule
    from reprolab.models.assemble import assemble, frozen_copy
    from runners.lm.module import LMModule

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    roles = objs["roles"]
    source = objs["data"].build(cfg.seed)
    model = objs["model"].build(source.vocab_size)
    reference = frozen_copy(model) if roles.objective.needs_reference else None  # the initial policy
    model = assemble(model, roles)
    module = LMModule(model, roles, objs["runner"], entropy_floor=source.entropy_floor, reference=reference)
    datamodule = LMDataModule(source)

    throughput = Throughput()
    checkpoint = ModelCheckpoint(
        dirpath=str(run_dir.checkpoint_dir), filename="step{step}", save_last=True, save_top_k=0,
        every_n_train_steps=objs["runner"].checkpoint_every or None, save_on_train_epoch_end=False,
    )
    callbacks = [throughput, checkpoint, *(instantiate(c) for c in (cfg.get("callbacks") or {}).values())]
    trainer = L.Trainer(
        **{k: v for k, v in cfg.trainer.items()},
        default_root_dir=str(run_dir.path),
        logger=lightning_loggers(cfg, run_dir),
        callbacks=callbacks,
        max_epochs=1,  # the train stream is infinite: one epoch, ended by trainer.max_steps
    )
    if trainer.is_global_zero:
        n_params = sum(p.numel() for p in model.parameters())
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        floor = f", entropy floor {source.entropy_floor:.4f} nats" if source.entropy_floor is not None else ""
        trained = "" if n_train == n_params else f" ({n_train / 1e6:.3f}M trainable)"
        log.info(f"model {n_params / 1e6:.2f}M params{trained}, vocab {source.vocab_size}{floor}")
    ckpt_path = str(run_dir.last_ckpt) if run_dir.resuming else None
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)  # our own checkpoint
    if not module.val_history or module.val_history[-1][0] != trainer.global_step:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    # The final checkpoint (ModelCheckpoint only writes on its interval).
    trainer.save_checkpoint(str(run_dir.last_ckpt), weights_only=False)  # full state: resumable
    if roles.adapter is not None and trainer.is_global_zero:
        save_adapter(module.model, roles.adapter, run_dir.checkpoint_dir)

    final = module.val_history[-1][1]
    results = {
        "table/val_loss": final,
        "table/best_val_loss": min(v for _, v in module.val_history),
        "table/tokens_per_s": throughput.tokens_per_s,
        "table/ms_per_step": throughput.ms_per_step(trainer.accumulate_grad_batches),
        "table/opt_state_bytes": optimizer_state_bytes(trainer.optimizers[0]),
        "table/params": sum(p.numel() for p in model.parameters()),
        "table/trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train/steps": trainer.global_step,
        "train/loss": float(trainer.callback_metrics.get("train/loss", float("nan"))),
    }
    if roles.objective.data_kind == "tokens":  # a per-token cross-entropy: its exponential is a perplexity
        results["table/val_ppl"] = math.exp(min(final, 50.0))
    results.update({f"table/val_{k}": v for k, v in module.last_val.items() if k != "loss"})
    if objs["runner"].eval is not None and trainer.is_global_zero:
        results.update(evaluate_after_training(module.model, roles.kv_cache, objs["runner"], source))
    if source.entropy_floor is not None:
        results["table/entropy_floor"] = source.entropy_floor
        results["table/excess_loss"] = final - source.entropy_floor
    if torch.cuda.is_available() and model.parameters().__next__().is_cuda:
        results["table/peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return results


def evaluate_after_training(model, kv_cache, runner, source) -> dict:
    """Score ``runner.eval`` (a generate-runner task) with the trained model decoding through the
    ``kv_cache`` plugin; its ``table/<metric>`` numbers come back as ``eval/<metric>``."""
    from reprolab.checks import ConfigError
    from runners.generate import evaluate

    task = runner.eval
    tokenizer = None if task.own_vocab is not None else getattr(source, "tokenizer", None)
    if task.own_vocab is None and tokenizer is None:
        raise ConfigError("runner.eval scores text, and this run's data has no tokenizer to encode it: evaluate a task "
                          "with its own token ids (recall), or train on text data (data=tinyshakespeare, ...).")
    if task.own_vocab is not None and model.config.vocab_size < task.own_vocab:
        raise ConfigError(f"runner.eval: the model's vocabulary ({model.config.vocab_size}) is smaller than the task's "
                          f"({task.own_vocab}): train on the data of the task (data=recall with the task's sizes).")
    was_training = model.training
    model.eval()
    _, out = evaluate(model, kv_cache, task, tokenizer, device=str(next(model.parameters()).device),
                      batch_size=runner.eval_batch_size)
    model.train(was_training)
    return {k.replace("table/", "eval/", 1): v for k, v in out.items()}


def save_adapter(model, adapter, folder) -> None:
    """``adapter.pt``: the adapter's tensors alone (load them with ``adapter.load_adapter_state_dict``
    into a model wrapped the same way); ``merged.ckpt``: the model with the adapter folded into its
    weights, a plain model any runner loads (``runner.checkpoint=<run folder>/checkpoints/merged.ckpt``)."""
    import copy

    from reprolab.checkpoint import save_atomic

    save_atomic({"adapter": adapter.registered_name, "hparams": adapter.hparams(),
                 "state_dict": adapter.adapter_state_dict(model)}, folder / "adapter.pt", keep_previous=False)
    merged = adapter.merge(copy.deepcopy(model))
    save_atomic({"state_dict": {f"model.{k}": v for k, v in merged.state_dict().items()}}, folder / "merged.ckpt",
                keep_previous=False)
