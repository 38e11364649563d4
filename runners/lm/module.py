from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics import SumMetric

from reprolab.checks import UserError


class NonFiniteLossError(UserError, FloatingPointError):
    """Training produced a NaN/inf loss; the message names the step and the checkpoint kept."""


def lm_loss(model: torch.nn.Module, batch: dict, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over labels != -100 (labels are pre-shifted), mean or sum."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=-100,
                           reduction=reduction)


class LMModule(L.LightningModule):
    """Causal-LM training with a pluggable optimizer (and optional loss) method.

    Validation reports the token-weighted mean loss over the whole validation set (``val/loss``),
    its exponential (``val/ppl``), and, when the data has a known entropy floor, ``val/excess_loss``.
    """

    def __init__(self, model, optimizer_method, runner_cfg, loss_method=None, entropy_floor=None):
        super().__init__()
        self.model = model
        self.optimizer_method = optimizer_method
        self.loss_method = loss_method
        self.runner_cfg = runner_cfg
        self.entropy_floor = entropy_floor
        self.val_loss_sum = SumMetric()
        self.val_tokens = SumMetric()
        self.val_history: list[tuple[int, float]] = []  # (step, val/loss), kept in checkpoints

    # ---- training -------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        if self.loss_method is not None:
            out = self.loss_method.loss(self.model, batch)
        else:
            out = {"loss": lm_loss(self.model, batch)}
        loss = out["loss"]
        if not torch.isfinite(loss):
            ckpt = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or "none written yet"
            raise NonFiniteLossError(
                f"loss is {loss.item()} at step {self.global_step}: training stopped. "
                f"The last checkpoint before it is kept: {ckpt}. Lower method.lr, add warmup "
                f"(runner.warmup_steps) or clip gradients (trainer.gradient_clip_val)."
            )
        for k, v in out.items():
            self.log(f"train/{k}", v, prog_bar=(k == "loss"))
        return loss

    def configure_optimizers(self):
        opt = self.optimizer_method.build_optimizer(self.model)
        max_steps = self.trainer.max_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: self.runner_cfg.lr_factor(s, max_steps))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- validation -----------------------------------------------------------------------
    def validation_step(self, batch, batch_idx):
        self.val_loss_sum.update(lm_loss(self.model, batch, reduction="sum"))
        self.val_tokens.update((batch["labels"] != -100).sum())

    def on_validation_epoch_end(self):
        loss = (self.val_loss_sum.compute() / self.val_tokens.compute()).item()
        self.val_loss_sum.reset()
        self.val_tokens.reset()
        metrics = {"val/loss": loss, "val/ppl": math.exp(min(loss, 50.0))}
        if self.entropy_floor is not None:
            metrics["val/entropy_floor"] = self.entropy_floor
            metrics["val/excess_loss"] = loss - self.entropy_floor
        self.log_dict(metrics, prog_bar=False, sync_dist=False)
        if not self.trainer.sanity_checking:
            self.val_history.append((self.global_step, loss))

    # ---- state that must survive a resume -------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["val_history"] = self.val_history

    def on_load_checkpoint(self, checkpoint):
        self.val_history = list(checkpoint.get("val_history", []))
