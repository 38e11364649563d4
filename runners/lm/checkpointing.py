"""How the `lm` runner writes and reads checkpoints (through `reprolab.checkpoint`).

`AtomicCheckpointIO` is the Trainer's CheckpointIO plugin: every checkpoint Lightning writes goes
to a temp file renamed into place when complete (``last.ckpt`` keeps its predecessor as
``last.prev.ckpt``), a full disk is one clear error, and an unreadable checkpoint names itself and
the fix. `StepCheckpoint` writes ``last.ckpt`` every ``runner.checkpoint_every`` steps, except at
the last step: `runners.lm.callbacks.Finalize` writes that one after the final validation, with the
run's results in it. A checkpoint written at the end of a training batch also carries the metrics row Lightning logs
for that batch just after it (`PENDING_ROW_KEY`): a kill between the two would otherwise lose that row, since the
resumed run starts after it (`resume_point`; `reprolab.csvlog.trim_metrics` writes it back).
"""
from __future__ import annotations

from pathlib import Path

from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from reprolab import checkpoint

RESULTS_KEY = "reprolab_results"
PENDING_ROW_KEY = "reprolab_pending_row"


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint_dict, path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint takes no storage_options, got {storage_options!r}")
        checkpoint.save_atomic(checkpoint_dict, path, keep_previous=Path(path).name == "last.ckpt")

    def load_checkpoint(self, path, map_location=lambda storage, loc: storage, weights_only=None):
        return checkpoint.load(path, map_location=map_location, weights_only=weights_only)


class StepCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that leaves the checkpoint at ``trainer.max_steps`` to `Finalize`, and that
    writes a checkpoint due at a step with a validation after that validation, so the checkpoint
    holds its result (a resume would not run it again, and ``best_val_loss`` would miss it)."""

    _deferred: tuple | None = None
    _pending: dict | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if 0 < trainer.max_steps <= trainer.global_step:
            return
        if _validates_after(trainer):
            self._deferred = (outputs, batch, batch_idx)
            return
        self._pending = pending_train_row(trainer)
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._pending = None

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self._pending is not None:
            checkpoint[PENDING_ROW_KEY] = self._pending

    def on_validation_end(self, trainer, pl_module) -> None:
        deferred, self._deferred = self._deferred, None
        if deferred is not None and not trainer.sanity_checking:
            super().on_train_batch_end(trainer, pl_module, *deferred)
        super().on_validation_end(trainer, pl_module)


def _validates_after(trainer) -> bool:
    """Whether the fit loop runs a validation right after the current training batch (Lightning's own
    rule for an integer ``val_check_interval``)."""
    every = trainer.val_check_batch
    if not trainer.enable_validation or not isinstance(every, int) or every < 1:
        return False
    return (trainer.fit_loop.epoch_loop.total_batch_idx + 1) % every == 0


def pending_train_row(trainer) -> dict | None:
    """The row Lightning will log for the current training batch (``{"step": .., metric: value}``, as its
    ``log_metrics`` builds it), or None where it logs none at this batch. Lightning logs it after the callbacks'
    ``on_train_batch_end``, where a step checkpoint is written."""
    from lightning.fabric.utilities.apply_func import convert_tensors_to_scalars

    connector, loop = trainer._logger_connector, trainer.fit_loop.epoch_loop
    if not trainer.loggers or loop._should_accumulate() or not connector.should_update_logs:
        return None
    metrics = convert_tensors_to_scalars(connector.metrics["log"])
    if not metrics:
        return None
    step = metrics.pop("step", None)
    if step is None:
        metrics.setdefault("epoch", trainer.current_epoch)
        step = loop._batches_that_stepped
    return {"step": int(step), **metrics}


def resume_point(path: Path) -> tuple[int, dict | None]:
    """The global step of the checkpoint a run resumes from and the metrics row it carries (`PENDING_ROW_KEY`,
    or None); a clear error if it cannot be read."""
    ckpt = checkpoint.load(path, weights_only=False, mmap=True)
    return int(ckpt["global_step"]), ckpt.get(PENDING_ROW_KEY)


def saved_results(path: Path) -> dict | None:
    """The results `Finalize` stored in the final checkpoint (None if it holds none)."""
    return checkpoint.load(path, weights_only=False, mmap=True).get(RESULTS_KEY)
