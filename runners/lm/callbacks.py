from __future__ import annotations

import time

import lightning as L
import torch


def logs_this_step(trainer) -> bool:
    """Whether the loggers write this training step's metrics (Lightning drops the others' values), or it is
    the last step (the results read its train/loss). A `self.log` costs 0.3-2 ms, more than a tiny model's
    step: the lm runner logs only then."""
    last = 0 < trainer.max_steps <= trainer.global_step + 1
    return trainer._logger_connector.should_update_logs or bool(trainer.fast_dev_run) or last


def scored_tokens(batch: dict) -> int:
    """Tokens with a label (!= -100) in a batch of any kind (``labels``, ``chosen_labels``, ...)."""
    return sum(int((v != -100).sum()) for k, v in batch.items() if k.endswith("labels"))


class Throughput(L.Callback):
    """Tokens/s and ms/step of the training steps (forward, backward, optimizer step).

    The first ``skip`` steps of each fit (allocator and kernel warm-up) are left out. Time spent in
    validation and checkpointing is not counted. Logged as ``train/tokens_per_s``.
    """

    def __init__(self, skip: int = 3):
        self.skip = skip
        self.reset()

    def reset(self):
        self.steps = self.tokens = 0
        self.seconds = 0.0
        self._seen = 0

    def on_train_start(self, trainer, pl_module):
        self.reset()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - self._t0
        self._seen += 1
        if self._seen <= self.skip:
            return
        self.steps += 1
        self.seconds += dt
        self.tokens += scored_tokens(batch) * trainer.world_size
        if self.seconds > 0 and logs_this_step(trainer):
            pl_module.log("train/tokens_per_s", self.tokens / self.seconds, on_step=True, on_epoch=False)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")

    def ms_per_step(self, accumulate: int = 1) -> float:
        """Milliseconds per optimizer step (``accumulate`` micro-batches each)."""
        return 1000 * self.seconds * accumulate / self.steps if self.steps else float("nan")


class WorkerLogging(L.Callback):
    """The job's logging in the processes ``strategy=ddp_spawn`` starts (see `reprolab.tracking.worker_logging`)."""

    def __init__(self, log_file):
        self.log_file = str(log_file)

    def setup(self, trainer, pl_module, stage):
        from reprolab.tracking import worker_logging

        worker_logging(self.log_file)


class Finalize(L.Callback):
    """End a fit inside the fit, so that it also happens in the workers of ``strategy=ddp_spawn``
    (whose module and callbacks never come back to the launching process): validate at the last
    step, compute the results (`summarize`) and write the final ``last.ckpt`` with them in it.
    The launching process reads them back from that file."""

    def __init__(self, last_ckpt):
        self.last_ckpt = str(last_ckpt)
        self.results: dict | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if 0 < trainer.max_steps <= trainer.global_step:
            trainer.should_stop = True  # Lightning validates once more when a fit is asked to stop

    def on_train_end(self, trainer, pl_module):
        self.results = summarize(trainer, pl_module)
        trainer.save_checkpoint(self.last_ckpt, weights_only=False)  # full state: resumable

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        from runners.lm.checkpointing import RESULTS_KEY

        if self.results is not None:
            checkpoint[RESULTS_KEY] = self.results


def summarize(trainer, module) -> dict:
    """The run's final numbers (``table/*`` feed the paper tables), from the last validation."""
    import math

    from reprolab.params import optimizer_state_bytes

    throughput = next(c for c in trainer.callbacks if isinstance(c, Throughput))
    final = module.val_history[-1][1]
    params = sum(p.numel() for p in module.model.parameters())
    results = {
        "table/val_loss": final,
        "table/best_val_loss": min(v for _, v in module.val_history),
        "table/tokens_per_s": throughput.tokens_per_s,
        "table/ms_per_step": throughput.ms_per_step(trainer.accumulate_grad_batches),
        "table/opt_state_bytes": optimizer_state_bytes(trainer.optimizers[0]),
        "table/params": params,
        "table/trainable_params": sum(p.numel() for p in module.model.parameters() if p.requires_grad),
        "train/steps": trainer.global_step,
        "train/loss": float(trainer.callback_metrics.get("train/loss", float("nan"))),
    }
    if module.objective.data_kind == "tokens":  # a per-token cross-entropy: its exponential is a perplexity
        results["table/val_ppl"] = math.exp(min(final, 50.0))
    results.update({f"table/val_{k}": v for k, v in module.last_val.items() if k != "loss"})
    if module.entropy_floor is not None:
        results["table/entropy_floor"] = module.entropy_floor
        results["table/excess_loss"] = final - module.entropy_floor
    if torch.cuda.is_available() and next(module.model.parameters()).is_cuda:
        results["table/peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return results
