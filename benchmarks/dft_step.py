"""DFT's cost per step against SFT's, on the same prompts, and the batched generation of its negatives.

The tiny LLaMA (d 128, byte tokens) on UltraFeedback prompts of ../shared/data/preference (zephyr
template, answers cut to data.max_length): an SFT step (token-mean CE of the B positives), a DFT step (each
prompt forwarded once, its positive and m = 2 negatives after it; the negatives' reference log-probs read
from the negatives cache, as the official precompute path), a DFT2 step, and DFT scoring the negatives with a
frozen reference at every step (for comparison); each step = forward, backward, AdamW, zero_grad, on the
same batches. Repetitions interleave the four; medians. Target: DFT / SFT <= 2.2. Generation: the negatives
of the training prompts sampled by `runners.generate.sampling.generate` in batches, against one prompt at a
time on the same prompts (tokens/s).

    python -m benchmarks.dft_step [--prompts 64] [--batch 8] [--steps 6] [--reps 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch


def step_timer(objective, model, batches, reference=None):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def run(n):
        t0 = time.perf_counter()
        for batch in batches[:n]:
            objective.loss(model, batch, reference)["loss"].backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return (time.perf_counter() - t0) / n

    return run


def generation_speed(source, model, n_prompts: int, batch: int) -> dict:
    from methods.dft.negatives import sampling_of
    from runners.generate.sampling import generate

    prompts = [e.gen_prompt for e in source.train[:n_prompts]]
    out = {}
    for label, bs in (("batched", batch), ("one_at_a_time", 1)):
        g = generate(model, prompts, sampling_of(source.cfg), pad_id=source.pad_id, eos_id=source.eos_id, batch_size=bs)
        out[label] = g.tokens_per_s
    return out


def main(argv=None) -> None:
    from benchmarks.common import SHARED_CPU_NOTE, write
    from methods.dft import DFT2Config, DFTConfig
    from methods.dft.data_config import DFTTextData
    from methods.sft import SFTConfig
    from reprolab.models.assemble import frozen_copy
    from reprolab.models.config import CausalLM
    from reprolab.registry import ROOT

    p = argparse.ArgumentParser()
    p.add_argument("--prompts", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not (Path(args.data_dir) / "preference").is_dir():
        sys.exit(f"dft_step reads UltraFeedback prompts from {args.data_dir}/preference: pass --data-dir.")
    cfg = DFTTextData(data_dir=args.data_dir, n_train=args.prompts, n_val=8, max_length=256, max_prompt_length=128,
                      max_new_tokens=64, num_negatives=2, negatives_per_step=2, batch_size=args.batch,
                      gen_batch_size=32)
    source = cfg.build(0)
    torch.manual_seed(0)
    model = CausalLM(hidden_size=128, intermediate_size=512, num_layers=2, num_heads=4).build(source.vocab_size)
    t0 = time.perf_counter()
    source.prepare(model)  # the negatives: generated in batches, scored by the base, cached in memory
    prepare_s = time.perf_counter() - t0
    gen = generation_speed(source, model, 16, 16)
    stream = source.train_batches(0, 0, 1)
    batches = [next(stream) for _ in range(args.steps)]
    tokens = {k: int(sum(b[f"{k}_attention_mask"].sum() for b in batches) / len(batches)) for k in ("pos", "neg")}
    kinds = {"SFT": (SFTConfig(), None), "DFT (cached reference)": (DFTConfig(), None), "DFT2": (DFT2Config(), None),
             "DFT (reference model each step)": (DFTConfig(reference="model"), frozen_copy(model))}
    timers = {k: step_timer(obj, copy.deepcopy(model), batches, ref) for k, (obj, ref) in kinds.items()}
    for t in timers.values():
        t(1)  # warm-up
    samples = {k: [] for k in kinds}
    for _ in range(args.reps):
        for k, t in timers.items():
            samples[k].append(t(args.steps))
    ms = {k: 1000 * statistics.median(v) for k, v in samples.items()}
    ratio = {k: ms[k] / ms["SFT"] for k in ms}
    numbers = {"ms_per_step": ms, "ratio_to_sft": ratio, "samples_s": samples, "target_dft_over_sft": 2.2,
               "generation_tokens_per_s": gen, "prepare_seconds": prepare_s,
               "prepare_tokens_per_s": source.negatives.tokens_per_s, "tokens_per_batch": tokens,
               "batch_prompts": args.batch, "negatives_per_prompt": 2, "threads": args.threads}
    rows = "\n".join(f"| {k} | {ms[k]:.1f} | {ratio[k]:.2f} |" for k in kinds)
    md = (f"## DFT step vs SFT step (tiny LLaMA d 128, byte tokens, UF prompts, {args.batch} prompts a step, "
          f"m = 2, CPU, {args.threads} thread)\n\n"
          f"Tokens per step (padded rows' real tokens, mean): positives {tokens['pos']}, negatives {tokens['neg']}.\n\n"
          "| step | ms (median of {r} x {s} steps) | / SFT |\n|---|---|---|\n".format(r=args.reps, s=args.steps) + rows +
          f"\n\nDFT / SFT = **{ratio['DFT (cached reference)']:.2f}** (target <= 2.2): the prompt once, then its positive "
          "and its m negatives after it (each group padded to its own longest answer); the optimizer step is shared."
          "\n\n"
          "## Negatives generation (runners.generate.sampling.generate, T 0.7, top-k 50, 64 new tokens)\n\n"
          "| | tokens/s |\n|---|---|\n"
          f"| {args.prompts} prompts x 2 negatives, batches of 32 rows (+ reference scoring: {prepare_s:.1f} s all) | "
          f"{source.negatives.tokens_per_s:.0f} |\n"
          f"| 16 prompts x 2, batches of 16 rows | {gen['batched']:.0f} |\n"
          f"| 16 prompts x 2, one row at a time | {gen['one_at_a_time']:.0f} |\n\n" + SHARED_CPU_NOTE + "\n")
    path = write("dft_step", numbers, md)
    print(path.read_text())


if __name__ == "__main__":
    main(sys.argv[1:])
