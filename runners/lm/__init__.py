"""The `lm` runner: train and evaluate a causal LM with Lightning.

Slots (`runners.lm.config.LMRunner.slots`): ``optimizer`` (AdamW when empty), ``objective``
(next-token CE when empty), optional ``adapter`` and ``temperature``; ``kv_cache`` serves the
evaluation after training (``runner.eval``). Everything else (model, data, hardware, loggers) comes from
its own config groups.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def run(cfg, run_dir, objs: dict) -> dict:
    """``objs``: the validated config (`reprolab.config.validate`), the plugins in ``objs["roles"]``."""
    import lightning as L
    from hydra.utils import instantiate

    from reprolab.checks import UserError
    from reprolab.models.assemble import assemble, frozen_copy
    from reprolab.tracking import lightning_loggers
    from runners.generate.model import load_weights
    from runners.lm.callbacks import Finalize, Throughput, WorkerLogging
    from runners.lm.checkpointing import (
        AtomicCheckpointIO,
        StepCheckpoint,
        resume_point,
        saved_results,
    )
    from runners.lm.data import LMDataModule
    from runners.lm.module import LMModule

    # Read the checkpoint's step first: an unreadable last.ckpt stops here, naming itself and the fix.
    start_step, pending_row = resume_point(run_dir.last_ckpt) if run_dir.resuming else (None, None)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    roles, runner = objs["roles"], objs["runner"]
    source = objs["data"].build(cfg.seed)
    model = objs["model"].build(source.vocab_size)
    tokenizer = getattr(objs["data"], "tokenizer", None)  # checked against the one a checkpoint's run recorded
    if runner.init_from:
        load_weights(model, runner.init_from, "runner.init_from", tokenizer)
    if hasattr(source, "prepare"):  # data made with the initial model (DFT's negatives), before any adapter
        source.prepare(model)
    reference = frozen_copy(model) if roles.objective.needs_reference else None  # the initial policy
    if reference is not None and runner.reference_from:
        load_weights(reference, runner.reference_from, "runner.reference_from", tokenizer)
    model = assemble(model, roles)
    module = LMModule(model, roles, runner, entropy_floor=source.entropy_floor, reference=reference)
    datamodule = LMDataModule(source)

    checkpoint = StepCheckpoint(
        dirpath=str(run_dir.checkpoint_dir), filename="step{step}", save_last=True, save_top_k=0,
        every_n_train_steps=runner.checkpoint_every or None, save_on_train_epoch_end=False,
    )
    finalize = Finalize(run_dir.last_ckpt)
    callbacks = [WorkerLogging(run_dir.path / "run.log"), Throughput(), checkpoint, finalize,
                 *(instantiate(c) for c in (cfg.get("callbacks") or {}).values())]
    trainer = L.Trainer(
        **{k: v for k, v in cfg.trainer.items()},
        default_root_dir=str(run_dir.path),
        logger=lightning_loggers(cfg, run_dir, resume_step=start_step, pending_row=pending_row),
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        max_epochs=1,  # the train stream is infinite: one epoch, ended by trainer.max_steps
        use_distributed_sampler=False,  # LMDataModule gives each rank its own share of the data
    )
    if trainer.is_global_zero:
        n_params = sum(p.numel() for p in model.parameters())
        n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
        floor = f", entropy floor {source.entropy_floor:.4f} nats" if source.entropy_floor is not None else ""
        trained = "" if n_train == n_params else f" ({n_train / 1e6:.3f}M trainable)"
        log.info(f"model {n_params / 1e6:.2f}M params{trained}, vocab {source.vocab_size}{floor}")
    ckpt_path = str(run_dir.last_ckpt) if run_dir.resuming else None
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False)  # our own checkpoint
    if roles.adapter is not None and trainer.is_global_zero:
        save_adapter(module.model, roles.adapter, run_dir.checkpoint_dir)
    # Finalize computed the results in this process, or (ddp_spawn workers; a resumed run whose fit was
    # already over) stored them in the final checkpoint.
    results = finalize.results or saved_results(run_dir.last_ckpt)
    if results is None:
        raise UserError(
            f"{run_dir.last_ckpt} is at the last step (trainer.max_steps={trainer.max_steps}) but holds no final "
            "results (it was written by an older reprolab). Rerun with a larger trainer.max_steps, or move the run "
            "folder away to train again."
        )
    if runner.eval is not None and trainer.is_global_zero:
        results.update(evaluate_after_training(module.model, roles.kv_cache, runner, source))
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
    """``adapter.pt``: the adapter's tensors alone and a fingerprint of the base weights it was trained on
    (load it with ``adapter.load_adapter_file`` into the same base model wrapped the same way);
    ``merged.ckpt``: the model with the adapter folded into its weights, a plain model any runner loads
    (``runner.checkpoint=<run folder>/checkpoints/merged.ckpt``)."""
    import copy

    from reprolab.checkpoint import save_atomic

    save_atomic({"adapter": adapter.registered_name, "hparams": adapter.hparams(),
                 "base": adapter.base_fingerprint(model), "state_dict": adapter.adapter_state_dict(model)},
                folder / "adapter.pt", keep_previous=False)
    merged = adapter.merge(copy.deepcopy(model))
    save_atomic({"state_dict": {f"model.{k}": v for k, v in merged.state_dict().items()}}, folder / "merged.ckpt",
                keep_previous=False)
