"""The `lm` runner: train and evaluate a causal LM with Lightning.

Roles it asks of the method: an optimizer (`OptimizerMethod`, required, from ``method`` or else
``runner.optimizer``) and optionally a training loss (`LossMethod`). Everything else (model,
data, hardware, loggers) comes from its own config groups.
"""
from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)


def _roles(cfg, objs):
    from reprolab.roles import LossMethod, OptimizerMethod

    method, runner_cfg = objs["method"], objs["runner"]
    optimizer = method if isinstance(method, OptimizerMethod) else runner_cfg.optimizer
    if not isinstance(optimizer, OptimizerMethod):
        raise TypeError(
            f"the lm runner needs an optimizer: method {type(method).__name__} is not one and runner.optimizer is "
            "unset. Add `- /method@runner.optimizer: adamw` to the experiment's defaults."
        )
    loss = method if isinstance(method, LossMethod) else None
    return optimizer, loss


def run(cfg, run_dir) -> dict:
    import lightning as L
    import torch
    from hydra.utils import instantiate
    from lightning.pytorch.callbacks import ModelCheckpoint

    from reprolab.config import validate
    from reprolab.params import optimizer_state_bytes
    from reprolab.tracking import lightning_loggers
    from runners.lm.callbacks import Throughput
    from runners.lm.data import LMDataModule
    from runners.lm.module import LMModule

    objs = validate(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    source = objs["data"].build(cfg.seed)
    model = objs["model"].build(source.vocab_size)
    optimizer, loss = _roles(cfg, objs)
    module = LMModule(model, optimizer, objs["runner"], loss_method=loss, entropy_floor=source.entropy_floor)
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
        floor = f", entropy floor {source.entropy_floor:.4f} nats" if source.entropy_floor is not None else ""
        log.info(f"model {n_params / 1e6:.2f}M params, vocab {source.vocab_size}{floor}")
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
        "train/steps": trainer.global_step,
        "train/loss": float(trainer.callback_metrics.get("train/loss", float("nan"))),
    }
    if source.entropy_floor is not None:
        results["table/entropy_floor"] = source.entropy_floor
        results["table/excess_loss"] = final - source.entropy_floor
    if torch.cuda.is_available() and model.parameters().__next__().is_cuda:
        results["table/peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return results
