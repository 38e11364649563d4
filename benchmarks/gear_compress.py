"""CPU compression throughput (tokens compressed per second): ours vs a plain unfused PyTorch version.

Ours: `methods.gear.compress.compress` with packed storage (quantise + pack, fp16 parameters, COO
outliers, fp16 factors) and in simulated storage. Baseline: a straightforward transcription of the
official functions (`tests.gear.official_ref.gear`: permute/view, topk, scatter, quantise, restore,
power iteration; no packing). Same math, same shapes: one 512-token chunk of a LLaMA-7B-shaped layer
(32 heads x 128), b = 2, g = 64, s = 2 %, r = 4, keys and values. Repetitions alternate the three
and the medians are reported (shared 2-core machine: ratios, not absolute numbers, are meaningful).

    python -m benchmarks.gear_compress [--tokens 512] [--reps 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def main(argv=None) -> None:
    from benchmarks.common import write
    from methods.gear.compress import CodecSpec, QuantSpec, compress
    from tests.gear import official_ref as ref

    p = argparse.ArgumentParser()
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    n = args.tokens
    k, v = torch.randn(1, 32, n, 128).half(), torch.randn(1, 32, n, 128).half()
    p0 = torch.rand(128, 4)
    packed = CodecSpec(QuantSpec(2, "channel", 64), QuantSpec(2, "token", 64), outlier_frac=0.02, outlier_count="official")
    simulated = CodecSpec(packed.key, packed.value, outlier_frac=0.02, outlier_count="official", storage="simulated")
    impls = {
        "ours (packed)": lambda: [compress(x, kind, packed, 4, p0) for x, kind in ((k, "key"), (v, "value"))],
        "ours (simulated)": lambda: [compress(x, kind, simulated, 4, p0) for x, kind in ((k, "key"), (v, "value"))],
        "unfused reference": lambda: [ref.gear(x, 2, 64, 0.02, 4, 3, kind) for x, kind in ((k, "key"), (v, "value"))],
    }
    times = {name: [] for name in impls}
    for name, fn in impls.items():
        fn()  # warm-up
    for _ in range(args.reps):
        for name, fn in impls.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    tps = {name: n / statistics.median(ts) for name, ts in times.items()}
    base = tps["unfused reference"]
    md = [f"Tokens of K and V compressed per second (one 32x128-head layer, chunk of {n} tokens, b=2, g=64, s=2%, r=4, "
          f"loops=3), median of {args.reps} interleaved repetitions, {args.threads} thread(s). Shared CPU: compare ratios.", "",
          "| implementation | tokens/s | vs unfused reference |", "|---|---|---|"]
    md += [f"| {name} | {t:.0f} | {t / base:.2f}x |" for name, t in tps.items()]
    md += ["", "On CPU nothing is fused: ours runs the PyTorch twin of the quantise+pack kernel. Packing, fp16 "
           "parameter rounding and COO bookkeeping are the price of real storage; the Triton kernels are GPU-only "
           "(benchmarks/gear_gpu.py)."]
    print("\n".join(md))
    write("gear_compress", {"tokens_per_s": tps, "tokens": n, "reps": args.reps}, "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
