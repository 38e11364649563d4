"""Tokens/s of the `lm` runner vs a bare PyTorch loop: same tiny model, data, optimizer, schedule.

Both are timed the same way: wall clock from the start of training step `WARMUP` to the start of the
last step, so every per-step cost counts (data, forward/backward/step, hooks, logging to CSV and
offline W&B, progress bar). Repetitions alternate bare / runner and the medians are compared, which
keeps a busy machine from favouring either side. Target: runner / bare >= 0.9.

    python -m benchmarks.runner_overhead [--steps 80] [--reps 3]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

WARMUP = 10
OVERRIDES = [f"+callbacks.wallclock._target_={__name__}.WallClock",  # this module, also when run as __main__
             "optimizer=adamw",  # the cheapest step, where the runner's own cost shows most (was the quickstart's COSMOS)
             "trainer.enable_progress_bar=true", "runner.checkpoint_every=0", "runner.warmup_steps=10",
             "data.batch_size=16", "data.val_sequences=16"]


class WallClock(L.Callback):
    """Start time of every training step; the runner instantiates it from ``callbacks.wallclock``."""

    latest: "WallClock | None" = None

    def __init__(self):
        self.starts = []
        WallClock.latest = self

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append(time.perf_counter())


def tokens_per_step(cfg) -> int:
    return cfg.data.batch_size * cfg.data.seq_len


def bare(cfg, steps: int) -> float:
    from methods.next_token import next_token_loss as lm_loss
    from reprolab.config import validate

    objs = validate(cfg, OVERRIDES)  # the overrides are the command line's: optimizer=adamw replaces the preset
    torch.manual_seed(cfg.seed)
    source = objs["data"].build(cfg.seed)
    model = objs["model"].build(source.vocab_size)
    opt = objs["roles"].optimizer.build_optimizer(model)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: objs["runner"].lr_factor(s, steps))
    starts = []
    for _, batch in zip(range(steps), source.train_batches(0, 0, 1)):
        starts.append(time.perf_counter())
        loss = lm_loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
    return tokens_per_step(cfg) * (len(starts) - 1 - WARMUP) / (starts[-1] - starts[WARMUP])


def runner(cfg, steps: int, log_dir: Path) -> float:
    from reprolab.app import JobInfo, main

    main(cfg, JobInfo(output_dir=log_dir, overrides=list(OVERRIDES)))
    s = WallClock.latest.starts
    return tokens_per_step(cfg) * (len(s) - 1 - WARMUP) / (s[-1] - s[WARMUP])


def main(argv=None) -> None:
    from benchmarks.common import write
    from tests.conftest import compose_job

    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args(argv)
    b, r = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.reps):
            cfg, _ = compose_job([*OVERRIDES, f"trainer.max_steps={args.steps}",
                                  f"trainer.val_check_interval={args.steps}"], Path(tmp) / f"rep{i}")
            b.append(bare(cfg, args.steps))
            r.append(runner(cfg, args.steps, Path(tmp) / f"rep{i}" / "run"))
    bm, rm = statistics.median(b), statistics.median(r)
    numbers = {"bare_tokens_per_s": b, "runner_tokens_per_s": r, "median_ratio": rm / bm,
               "paired_ratios": [y / x for x, y in zip(b, r)], "steps": args.steps,
               "target_ratio": 0.9}
    md = ("## lm runner overhead (tiny LLaMA, Markov data, AdamW, batch 16 x 64 tokens, CPU)\n\n"
          "| | tokens/s (median of {n}) | all reps |\n|---|---|---|\n"
          f"| bare PyTorch loop | {bm:.0f} | {', '.join(f'{x:.0f}' for x in b)} |\n"
          f"| lm runner (Lightning, CSV + offline W&B) | {rm:.0f} | {', '.join(f'{x:.0f}' for x in r)} |\n\n"
          f"Ratio runner / bare: **{rm / bm:.3f}** (target >= 0.9). Paired ratios per repetition: "
          f"{', '.join(f'{y / x:.2f}' for x, y in zip(b, r))}; their spread is this machine's run-to-run noise, "
          "so a ratio near or above 1 means the runner's per-step cost is below what we can resolve here.\n"
          ).replace("{n}", str(args.reps))
    path = write("runner_overhead", numbers, md)
    print(path.read_text())


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
