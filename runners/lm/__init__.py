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

    final = module.val_history[-1][1]
    results = {
        "table/val_loss": final,
        "table/val_ppl": math.exp(min(final, 50.0)),
        "table/best_val_loss": min(v for _, v in module.val_history),
        "table/tokens_per_s": throughput.tokens_per_s,
        "table/ms_per_step": throughput.ms_per_step(trainer.accumulate_grad_batches),
        "table/opt_state_bytes": optimizer_state_bytes(trainer.optimizers[0]),
        "table/params": sum(p.numel() for p in model.parameters()),
        "table/trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "train/steps": trainer.global_step,
        "train/loss": float(trainer.callback_metrics.get("train/loss", float("nan"))),
    }
    results.update({f"table/val_{k}": v for k, v in module.last_val.items() if k != "loss"})
    if source.entropy_floor is not None:
        results["table/entropy_floor"] = source.entropy_floor
        results["table/excess_loss"] = final - source.entropy_floor
    if torch.cuda.is_available() and model.parameters().__next__().is_cuda:
        results["table/peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return results
