"""Decode step time with PASTA steering vs unsteered (CPU, the tiny model).

Greedy decoding through a DynamicCache, batch 4, 256-token prompt with a 32-token highlighted span,
64 new tokens, random-init tiny LLaMA (d 128, 2 layers, 4 heads: conf/model/llama_tiny), fp32, 1
thread, SDPA and eager attention. Steered: 2 heads in each layer, alpha 0.01. The steering is a masked
add on the selected heads' scores inside the one attention pass (`reprolab.models.attention`), so the
target is steered <= 1.15x the unsteered step time. The variants take turns step by step; medians.

    python -m benchmarks.pasta_decode [--reps 5] [--prompt 256] [--new 64]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def step_times(variants: dict, prompt, new: int) -> dict[str, list[float]]:
    """Per variant, the wall time (ms) of each decode step (prefill excluded); the variants take turns
    step by step, so the load of the shared machine hits them alike."""
    from transformers import DynamicCache

    from reprolab.models.attention import highlighting
    from runners.generate.decode import Stepper

    steppers = {}
    for name, (model, hl) in variants.items():
        with highlighting(model, hl):
            steppers[name] = Stepper(model, DynamicCache(config=model.config), prompt, torch.ones_like(prompt))
    times = {name: [] for name in variants}
    for _ in range(new):
        for name, (model, hl) in variants.items():
            s = steppers[name]
            with highlighting(model, hl):
                t0 = time.perf_counter()
                s.step(s.logits.argmax(-1))
                times[name].append(1000 * (time.perf_counter() - t0))
    return times


def main(argv=None) -> None:
    from benchmarks.common import SHARED_CPU_NOTE, write
    from methods.pasta import PASTAConfig
    from reprolab.models.attention import install
    from reprolab.models.config import CausalLM

    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--new", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    prompt = torch.randint(0, 256, (args.batch, args.prompt), generator=torch.Generator().manual_seed(0))
    highlight = torch.zeros(args.batch, args.prompt, dtype=torch.bool)
    highlight[:, args.prompt // 2 : args.prompt // 2 + 32] = True
    steering = PASTAConfig(alpha=0.01, heads=[[0, 1], [0, 3], [1, 0], [1, 2]])
    variants = {}
    for impl in ("sdpa", "eager"):
        for name, steer, hl in (("unsteered", None, None), ("steered", steering, highlight)):
            torch.manual_seed(0)
            model = CausalLM(hidden_size=128, intermediate_size=512, num_layers=2, num_heads=4).build(256).eval()
            model.set_attn_implementation(impl)
            install(model, None, steer)
            variants[f"{impl} {name}"] = (model, hl)
    times = {name: [] for name in variants}
    with torch.no_grad():
        for _ in range(args.reps):
            for name, t in step_times(variants, prompt, args.new).items():
                times[name] += t
    med = {name: statistics.median(v) for name, v in times.items()}
    ratio = {impl: med[f"{impl} steered"] / med[f"{impl} unsteered"] for impl in ("sdpa", "eager")}
    md = [f"Decode step time (ms, median over {args.reps} x {args.new} steps; the four variants take turns step by step), batch "
          f"{args.batch}, {args.prompt}-token prompt with a 32-token highlight, tiny LLaMA d=128 x 2 layers x 4 heads, fp32, "
          "1 thread; steered: 4 heads (2 per layer), alpha = 0.01. Target: steered <= 1.15x unsteered.", "",
          "| attention | unsteered ms | steered ms | steered / unsteered | target met |", "|---|---|---|---|---|"]
    md += [f"| {impl} | {med[f'{impl} unsteered']:.3f} | {med[f'{impl} steered']:.3f} | {ratio[impl]:.3f}x | "
           f"{'yes' if ratio[impl] <= 1.15 else 'no'} |" for impl in ("sdpa", "eager")]
    md += ["", SHARED_CPU_NOTE]
    print("\n".join(md))
    write("pasta_decode", {"step_ms": med, "ratio": ratio, **vars(args)}, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
