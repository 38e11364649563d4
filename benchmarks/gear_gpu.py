"""GPU benchmark (one H100/H200, < 10 min): GEAR's Triton kernels vs their PyTorch twins, and decode
throughput / peak memory of fp16 vs KIVI-2 vs GEAR-L vs GEAR (GEAR paper §4.1 throughput protocol).

Run on an H200 (benchmarks/results/gear_gpu.md: batches 1 and 8; gear_gpu_b32.md: batch 32; read
them with benchmarks/results/README.md). Its CPU-runnable path is exercised by
tests/gear/test_benchmarks.py (tiny model, twin backends).

1. Kernels (fp16 inputs, CUDA events, median of 20): quantise + pack of a LLaMA-7B layer's keys
   (batch 8, 32 heads x 128 channels x 1024 tokens, b = 2, g = 64) and decode attention over a
   compressed cache (batch 8, 32 heads, 1024 compressed tokens with GEAR outliers and low-rank, 64 fp16
   buffer tokens): Triton vs twin time and max |difference|.
2. Decode: a randomly initialised LLaMA-7B-shaped model (d 4096, 32 layers, 32 heads, fp16), prompt of
   1000 random tokens, 500 greedy new tokens, batch 1 / 8 / 32; fp16 DynamicCache (SDPA) vs KIVI-2,
   GEAR-L and GEAR (b = 2, g = n_b = 64, s = 2 %, r = 4/2) with fused decode attention. Reports
   generated tokens/s (prefill included, as the official cuda_supported_gear/test.py) and
   torch.cuda.max_memory_allocated. Expectation (spec §5.2): KV ~19-25 % of fp16, throughput gains
   only at large batch.

    python -m benchmarks.gear_gpu [--layers 32] [--batches 1,8,32] [--prompt 1000] [--new 500]
                                  [--caches fp16,KIVI-2,GEAR-L,GEAR] [--name gear_gpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def _time(fn, device, reps=20) -> float:
    """Median seconds of ``fn`` (CUDA events on GPU, wall clock elsewhere)."""
    fn()
    out = []
    for _ in range(reps):
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize()
            out.append(a.elapsed_time(b) / 1000)
        else:
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return statistics.median(out)


def kernels(device, B=8, H=32, d=128, n=1024, reps=20) -> dict:
    from reprolab.kernels.gear import quant, quant_triton
    from reprolab.kernels.gear.attention import decode_attention
    from methods.gear.compress import CodecSpec, QuantSpec, compress
    from methods.gear.store import PackedStore

    rows = torch.randn(B * H * d, n, device=device, dtype=torch.float16)
    twin = lambda: quant.quantize_pack(rows, 2, 64)  # noqa: E731
    trit = lambda: quant_triton.quantize_pack(rows, 2, 64)  # noqa: E731
    same = all(torch.equal(a, b) for a, b in zip(twin(), trit()))
    res = {"quant_twin_s": _time(twin, device, reps), "quant_triton_s": _time(trit, device, reps), "quant_codes_equal": same}
    codec = CodecSpec(QuantSpec(2, "channel", 64), QuantSpec(2, "token", 64), outlier_frac=0.02)
    sk, sv = PackedStore(codec.key, H, d), PackedStore(codec.value, H, d)
    for chunk, r in [(n - 128, 4), (64, 2), (64, 2)]:
        x = torch.randn(B, H, chunk, d, device=device, dtype=torch.float16)
        p0 = torch.rand(d, r, device=device)
        sk.append(compress(x, "key", codec, r, p0))
        sv.append(compress(x, "value", codec, r, p0))
    q = torch.randn(B, H, d, device=device, dtype=torch.float16)
    bk = torch.randn(B, H, 64, d, device=device, dtype=torch.float16)
    bv = torch.randn(B, H, 64, d, device=device, dtype=torch.float16)
    f = {be: (lambda be=be: decode_attention(q, sk, sv, bk, bv, d**-0.5, backend=be)) for be in ("torch", "triton")}
    res.update(attn_twin_s=_time(f["torch"], device, reps), attn_triton_s=_time(f["triton"], device, reps),
               attn_max_diff=float((f["torch"]() - f["triton"]()).abs().max()))
    return res


CACHES = ("fp16", "KIVI-2", "GEAR-L", "GEAR")


PROBE_BATCH, PROBE_STEPS = 4, 4


def budget_batch(run, budget: float, weights: int, prompt: int, new: int) -> tuple[int, dict]:
    """The largest batch whose weights + KV + activations fit ``budget`` bytes for one cache, from a
    probe (``run(batch, steps)`` -> (peak bytes allocated, KV bytes held)) at PROBE_BATCH sequences:
    KV bytes per token per sequence times prompt + new, plus the probe's other peak bytes per sequence."""
    peak, kv = run(PROBE_BATCH, PROBE_STEPS)
    kv_token = kv / (PROBE_BATCH * (prompt + PROBE_STEPS))
    act = max(0.0, (peak - weights - kv) / PROBE_BATCH)
    per_seq = kv_token * (prompt + new) + act
    return max(0, int((budget - weights) // per_seq)), {"kv_bytes_per_token": kv_token, "act_bytes_per_seq": act}


def decode(device, layers=32, hidden=4096, heads=32, inter=11008, vocab=32000, batches=(1, 8, 32), prompt=1000, new=500,
           dtype=torch.float16, caches=CACHES, budget_gib=None):
    """Yields one row per (batch, cache), batch-major, caches in the order given: a run cut short
    still compares every cache at the batches it reached. Each row splits off the prefill's time;
    at the last batch one more decode step (after the timed ones) is profiled. With ``budget_gib``
    (CUDA) each cache runs once, at the largest batch that fits that budget (`budget_batch`, from
    the allocator's peak in a probe run), instead of at ``batches``."""
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    from methods.gear import GearConfig
    from methods.kivi import KIVIConfig
    from benchmarks.common import profile_once
    from runners.generate.decode import Stepper, kv_stats

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=prompt + new + 8)
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it runs: a 7B model's random init on the CPU takes minutes
        model = LlamaForCausalLM(cfg).to(dtype=dtype).eval()
    fused = device.type == "cuda"  # the twin on CPU is correct but slow; CPU runs check the code path only
    attention = "fused" if fused else "materialize"
    known = {"fp16": lambda: None, "KIVI-2": lambda: KIVIConfig(attention=attention),
             "GEAR-L": lambda: GearConfig(outlier_frac=0.0, attention=attention), "GEAR": lambda: GearConfig(attention=attention)}
    methods = {name: known[name]() for name in caches}

    def use(name):
        m = methods[name]
        if m is not None:
            m.prepare_model(model)
        model.set_attn_implementation(m.attn_implementation if m is not None and m.attn_implementation else "sdpa")
        return lambda: DynamicCache(config=cfg) if m is None else m.make_cache(cfg)

    def probe(name):
        make = use(name)

        def run(batch, steps):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            ids = torch.randint(0, vocab, (batch, prompt), device=device)
            with torch.no_grad():
                s = Stepper(model, make(), ids, torch.ones_like(ids))
                for _ in range(steps):
                    s.step(s.logits.argmax(-1))
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated(), kv_stats(s.cache)[0]
        return run

    if budget_gib is not None:
        weights = sum(t.numel() * t.element_size() for t in model.parameters())
        plan = []
        for name in methods:
            B, sizes = budget_batch(probe(name), budget_gib * 2**30, weights, prompt, new)
            print({"cache": name, "budget_gib": budget_gib, "batch": B, **sizes}, flush=True)
            plan.append((B, name, sizes))
    else:
        plan = [(B, name, {}) for B in batches for name in methods]
    for B, name, sizes in plan:
        ids = torch.randint(0, vocab, (B, prompt), device=device)
        make = use(name)
        row = {"cache": name, "batch": B, **sizes}
        try:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            cache = make()
            with torch.no_grad():
                s = Stepper(model, cache, ids, torch.ones_like(ids))
                if device.type == "cuda":
                    torch.cuda.synchronize()
                prefill = time.perf_counter() - t0
                for _ in range(new - 1):
                    s.step(s.logits.argmax(-1))
            if device.type == "cuda":
                torch.cuda.synchronize()
                row["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
            sec = time.perf_counter() - t0
            measured, nominal, fp16 = kv_stats(cache)
            row.update(tokens_per_s=B * new / sec, seconds=sec, prefill_s=prefill,
                       decode_tokens_per_s=B * (new - 1) / (sec - prefill), kv_gb=measured / 2**30,
                       kv_fraction=measured / fp16)
            if budget_gib is None and B == batches[-1]:
                with torch.no_grad():
                    row["profile"] = profile_once(lambda: s.step(s.logits.argmax(-1)), device.type == "cuda")
            del cache, s
        except torch.cuda.OutOfMemoryError:
            row["error"] = "out of memory"
        print(row, flush=True)
        yield row


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--prompt", type=int, default=1000)
    p.add_argument("--new", type=int, default=500)
    p.add_argument("--caches", default=",".join(CACHES), help=f"comma-separated, in the order to run: {CACHES}")
    p.add_argument("--name", default="gear_gpu", help="results file name under benchmarks/results")
    p.add_argument("--budget-gib", type=float, help="run each cache once, at the largest batch that fits this many GiB "
                   "(weights + KV + activations; issue 20: 40, where GEAR's tokens/s should be >= 2x fp16's)")
    args = p.parse_args(argv)
    caches = args.caches.split(",")
    if unknown := sorted(set(caches) - set(CACHES)):
        p.error(f"--caches: unknown {unknown}; choose from {CACHES}")
    if not torch.cuda.is_available():
        print("benchmarks.gear_gpu: no CUDA device here, skipped (it needs one H100/H200; see its docstring).")
        return
    from benchmarks.common import write

    device = torch.device("cuda")
    k = kernels(device)
    rows = []
    for row in decode(device, layers=args.layers, batches=[int(b) for b in args.batches.split(",")], prompt=args.prompt,
                      new=args.new, caches=caches, budget_gib=args.budget_gib):
        rows.append(row)  # written after every row: a run stopped at its time limit keeps what it measured
        write(args.name, {"kernels": k, "decode": rows, **vars(args)}, markdown(k, rows, args) + "\n")
    print(markdown(k, rows, args))


def markdown(k: dict, rows: list[dict], args) -> str:
    md = [f"GPU: {torch.cuda.get_device_name()}. Kernels (median of 20, fp16): quantise+pack twin {k['quant_twin_s'] * 1e3:.3f} ms "
          f"vs Triton {k['quant_triton_s'] * 1e3:.3f} ms (codes equal: {k['quant_codes_equal']}); decode attention twin "
          f"{k['attn_twin_s'] * 1e3:.3f} ms vs Triton {k['attn_triton_s'] * 1e3:.3f} ms (max |diff| {k['attn_max_diff']:.2e}).", "",
          f"Decode: random-init LLaMA-7B shape ({args.layers} layers), prompt {args.prompt}, {args.new} new tokens, fp16.", "",
          "| cache | batch | tokens/s | prefill s | decode tokens/s | peak memory (GiB) | KV (GiB) | KV / fp16 |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            md.append(f"| {r['cache']} | {r['batch']} | {r['error']} | | | | | |")
        else:
            md.append(f"| {r['cache']} | {r['batch']} | {r['tokens_per_s']:.1f} | {r['prefill_s']:.2f} | "
                      f"{r['decode_tokens_per_s']:.1f} | {r['peak_mem_gb']:.2f} | {r['kv_gb']:.3f} | "
                      f"{r['kv_fraction']:.3f} |")
    fp16 = next((r for r in rows if r["cache"] == "fp16" and "error" not in r), None)
    if args.budget_gib is not None:
        md += ["", f"Fixed budget of {args.budget_gib:g} GiB: each cache at the largest batch whose weights + KV + "
               "activations fit it (a probe run's allocator peak; `budget_batch`). Target (issue 20): GEAR's tokens/s "
               ">= 2x fp16's (the paper's 2.1-5.07x is measured this way)."]
    elif fp16 is not None:
        md += ["", "Target (issue 20) at equal batch 32: GEAR not slower than fp16."]
    for r in rows:
        if fp16 is not None and "error" not in r and r["cache"] != "fp16" and (args.budget_gib is not None
                                                                                or r["batch"] == fp16["batch"]):
            md.append(f"- {r['cache']} / fp16 tokens/s at batch {r['batch']} vs {fp16['batch']}: "
                      f"{r['tokens_per_s'] / fp16['tokens_per_s']:.2f}x")
    for r in rows:
        if "profile" in r:
            prof = r["profile"]
            md += ["", f"## Profile of one decode step after the timed ones: {r['cache']}, batch {r['batch']}: "
                   f"{prof['gpu_ops']} GPU operations, {prof['device_ms']:.1f} ms of GPU time", "", "```",
                   prof["table"].rstrip(), "```"]
    return "\n".join(md)


if __name__ == "__main__":
    main()
