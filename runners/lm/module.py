from __future__ import annotations

import math
from collections import defaultdict

import lightning as L
import torch

from reprolab.checks import UserError
from runners.lm.callbacks import logs_this_step


def _zero_sums() -> list:
    """A validation (sum, count) pair before any batch."""
    return [0.0, 0.0]


class NonFiniteLossError(UserError, FloatingPointError):
    """Training produced a NaN/inf loss; the message names the step and the checkpoint kept."""


class LMModule(L.LightningModule):
    """Training of a causal LM by the run's roles: ``roles.objective`` gives the loss and the
    validation sums, ``roles.optimizer`` builds the optimizer over the trainable parameters.

    ``reference``: the frozen reference model of objectives that need one (``needs_reference``):
    not a submodule, so it is neither trained, nor wrapped by DDP, nor saved in checkpoints; it
    follows the policy's device. Validation reports ``val/<name> = sum / count`` over the whole
    validation set for every pair the objective's ``evaluate`` returns (``val/loss`` is the
    token-weighted mean for next-token CE), ``val/ppl`` = exp(val/loss) for per-token objectives and,
    when the data has a known entropy floor, ``val/excess_loss``.
    """

    def __init__(self, model, roles, runner_cfg, entropy_floor=None, reference=None):
        super().__init__()
        self.model = model
        self.optimizer_method = roles.optimizer
        self.objective = roles.objective
        self.adapter = roles.adapter
        self.temperature = roles.temperature
        self.runner_cfg = runner_cfg
        self.entropy_floor = entropy_floor
        self.__dict__["reference"] = reference  # kept out of the module tree (see the class docstring)
        self._val_sums: dict[str, list] = defaultdict(_zero_sums)  # no lambda: ddp_spawn pickles the module
        self.val_history: list[tuple[int, float]] = []  # (step, val/loss), kept in checkpoints
        self.last_val: dict[str, float] = {}  # the objective's validation means at the last validation

    def on_fit_start(self):
        if self.reference is not None:
            self.reference.to(self.device)

    on_validation_start = on_fit_start

    # ---- training -------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        out = self.objective.loss(self.model, batch, self.reference)
        if self.adapter is not None and (reg := self.adapter.regularizer(self.model)) is not None:
            out["adapter_reg"] = reg
            out["loss"] = out["loss"] + reg
        loss = out["loss"]
        if not torch.isfinite(loss):
            ckpt = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or "none written yet"
            raise NonFiniteLossError(
                f"loss is {loss.item()} at step {self.global_step}: training stopped. "
                f"The last checkpoint before it is kept: {ckpt}. Lower method.lr, add warmup "
                f"(runner.warmup_steps) or clip gradients (trainer.gradient_clip_val)."
            )
        if logs_this_step(self.trainer):
            for k, v in out.items():
                self.log(f"train/{k}", v, prog_bar=(k == "loss"))
        return loss

    def on_before_optimizer_step(self, optimizer):
        if self.adapter is not None:  # gradients accumulated, weights not yet stepped (RoseLoRA's importance)
            self.adapter.on_before_train_step(self.model)

    def optimizer_step(self, *args, **kwargs):
        super().optimizer_step(*args, **kwargs)
        if self.adapter is not None:  # after the step, before zero_grad (AdaLoRA's rank allocation reads the grads)
            self.adapter.on_train_step(self.model, self.global_step, self.trainer.max_steps)

    def configure_optimizers(self):
        max_steps = self.trainer.max_steps
        own = self.temperature.param_group() if self.temperature is not None else None
        if own is None:
            opt = self.optimizer_method.build_optimizer(self.model)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: self.runner_cfg.lr_factor(s, max_steps))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        # the tau network in a group of its own (TempNet's lr), at a constant lr: built without it, then added
        tau = [p for p in self.model.temperature.parameters() if p.requires_grad]
        ids = {id(p) for p in tau}
        if not any(p.requires_grad and id(p) not in ids for p in self.model.parameters()):  # TempNet trains alone
            opt = self.optimizer_method.build_optimizer(self.model)
            for group in opt.param_groups:
                group.update(own)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        for p in tau:
            p.requires_grad_(False)
        try:
            opt = self.optimizer_method.build_optimizer(self.model)
        finally:
            for p in tau:
                p.requires_grad_(True)
        opt.add_param_group({"params": tau, **own})
        factors = [lambda s: self.runner_cfg.lr_factor(s, max_steps)] * (len(opt.param_groups) - 1) + [lambda s: 1.0]
        sched = torch.optim.lr_scheduler.LambdaLR(opt, factors)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # ---- validation -----------------------------------------------------------------------
    def validation_step(self, batch, batch_idx):
        for name, (total, count) in self.objective.evaluate(self.model, batch, self.reference).items():
            sums = self._val_sums[name]
            sums[0] = sums[0] + total.detach().float()  # fp32 sums, as torchmetrics' SumMetric kept them
            sums[1] = sums[1] + count.detach().float()

    def on_validation_epoch_end(self):
        means = {}
        for name, (total, count) in self._val_sums.items():  # summed over ranks: every shard counts
            both = self.trainer.strategy.reduce(torch.stack([total, count]).to(self.device), reduce_op="sum")
            means[name] = (both[0] / both[1]).item()
        self._val_sums.clear()
        loss = means["loss"]
        metrics = {f"val/{k}": v for k, v in means.items()}
        if self.objective.data_kind == "tokens":  # a per-token cross-entropy: its exponential is a perplexity
            metrics["val/ppl"] = math.exp(min(loss, 50.0))
        if self.entropy_floor is not None:
            metrics["val/entropy_floor"] = self.entropy_floor
            metrics["val/excess_loss"] = loss - self.entropy_floor
        self.log_dict(metrics, prog_bar=False, sync_dist=False)
        if not self.trainer.sanity_checking:
            self.val_history.append((self.global_step, loss))
            self._log_pair_histograms()
            self.last_val = means

    def _log_pair_histograms(self):
        """Per-pair state of the objective (R3M's delta, APS's tau): one W&B histogram per tensor."""
        hists = pair_histograms(self.objective.state_dict())
        if not hists or not self.trainer.is_global_zero:
            return
        from lightning.pytorch.loggers import WandbLogger

        for logger in self.loggers:
            if isinstance(logger, WandbLogger):
                import wandb

                logger.experiment.log({**{f"pairs/{k}": wandb.Histogram(v.numpy()) for k, v in hists.items()},
                                       "trainer/global_step": self.global_step})

    # ---- state that must survive a resume -------------------------------------------------
    def on_save_checkpoint(self, checkpoint):
        checkpoint["val_history"] = self.val_history
        checkpoint["objective"] = self.objective.state_dict()
        if self.adapter is not None:
            checkpoint["adapter"] = self.adapter.train_state_dict(self.model)

    def on_load_checkpoint(self, checkpoint):
        self.val_history = list(checkpoint.get("val_history", []))
        self.objective.load_state_dict(checkpoint.get("objective", {}))
        if self.adapter is not None:
            self.adapter.load_train_state_dict(self.model, checkpoint.get("adapter", {}))


def pair_histograms(state: dict) -> dict:
    """The 1-D tensors of an objective's state (one value per training pair), without the pairs
    never visited (NaN): what the W&B histograms show."""
    out = {}
    for name, v in state.items():
        if isinstance(v, torch.Tensor) and v.ndim == 1 and v.is_floating_point():
            v = v[torch.isfinite(v)].detach().float().cpu()
            if v.numel():
                out[name] = v
    return out
