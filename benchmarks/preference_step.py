"""A DPO policy step against its frozen reference vs a plain SFT step of the same model on the same batch.

The batch: B preference pairs, i.e. 2B sequences (prompt + chosen, prompt + rejected). The SFT step trains
next-token cross-entropy on those 2B sequences (the same tokens scored); the DPO step (`objective=dpo`) runs
the policy forward over both halves in one batched forward, the reference forward under no_grad, the loss,
the backward and the same AdamW step. So the DPO step's extra work is the reference forward (~1/3 of a
forward + backward) plus the pairwise loss. Target (issue 15): DPO / SFT <= 1.6.

Repetitions alternate SFT / DPO in one process and the medians are compared (a busy machine favours neither).

    python -m benchmarks.preference_step [--pairs 16] [--steps 20] [--reps 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

TARGET = 1.6


def setup(pairs: int, seed: int = 0):
    from methods.dpo import DPOConfig
    from reprolab.data.config import PreferenceMarkovData
    from reprolab.models.assemble import frozen_copy
    from reprolab.models.config import CausalLM

    data = PreferenceMarkovData(vocab_size=256, prompt_len=64, response_len=64, batch_size=pairs)
    batch = next(data.build(seed).train_batches(0, 0, 1))
    torch.manual_seed(seed)
    model = CausalLM().build(256)  # the tiny LLaMA (conf/model/llama_tiny: d 128, 2 layers, 4 heads)
    sft = {"input_ids": torch.cat([batch["chosen_input_ids"], batch["rejected_input_ids"]]),
           "labels": torch.cat([batch["chosen_labels"], batch["rejected_labels"]])}
    return model, frozen_copy(model), batch, sft, DPOConfig()


def timed_steps(loss_fn, model, steps: int) -> float:
    """Median seconds of ``steps`` full steps (loss, backward, AdamW step, zero_grad)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for _ in range(steps + 2):  # two warm-up steps
        t = time.perf_counter()
        loss_fn().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times[2:])


def main(argv=None) -> None:
    from benchmarks.common import SHARED_CPU_NOTE, write
    from methods.next_token import next_token_loss

    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    model, reference, batch, sft_batch, dpo = setup(args.pairs)
    sft, pref = [], []
    for _ in range(args.reps):
        sft.append(timed_steps(lambda: next_token_loss(model, sft_batch), model, args.steps))
        pref.append(timed_steps(lambda: dpo.loss(model, batch, reference)["loss"], model, args.steps))
    s, d = statistics.median(sft), statistics.median(pref)
    tokens = tuple(batch["chosen_input_ids"].shape)
    numbers = {"sft_ms": [1000 * x for x in sft], "dpo_ms": [1000 * x for x in pref], "median_ratio": d / s,
               "paired_ratios": [y / x for x, y in zip(sft, pref)], "target_ratio": TARGET, "pairs": args.pairs,
               "sequence_tokens": tokens[1], "threads": torch.get_num_threads()}
    md = (f"## DPO step with a frozen reference vs an SFT step (tiny LLaMA d 128, 2 layers, vocab 256, CPU fp32, "
          f"{torch.get_num_threads()} threads)\n\n"
          f"Batch: {args.pairs} pairs = {2 * args.pairs} sequences of {tokens[1]} tokens (prompt 64, response 64); the "
          "SFT step scores the same response tokens of the same 2B sequences. Step = loss + backward + AdamW.\n\n"
          f"| step | ms (median of {args.reps} reps x {args.steps} steps) | all reps |\n|---|---|---|\n"
          f"| SFT (next-token CE) | {1000 * s:.1f} | {', '.join(f'{1000 * x:.1f}' for x in sft)} |\n"
          f"| DPO (policy + no-grad reference, one batched forward each) | {1000 * d:.1f} | "
          f"{', '.join(f'{1000 * x:.1f}' for x in pref)} |\n\n"
          f"Ratio DPO / SFT: **{d / s:.2f}** (target <= {TARGET}). Paired ratios: "
          f"{', '.join(f'{y / x:.2f}' for x, y in zip(sft, pref))}.\n\n{SHARED_CPU_NOTE}\n")
    path = write("preference_step", numbers, md)
    print(path.read_text())


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
