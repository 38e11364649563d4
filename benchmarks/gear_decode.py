"""GEAR decode on CPU: what one decode step materialises, and tokens/s at equal batch and at a fixed
memory budget, for DynamicCache (16-bit), KIVI-2, GEAR-L, GEAR (materialised attention) and GEAR with
the fused decode attention (its PyTorch twin on CPU).

    python -m benchmarks.gear_decode [--prompt 512] [--new 64] [--batch 4] [--budget-mib 12] [--reps 1]

Model: a random-init LLaMA (d 256, 4 layers, 8 heads, 2 KV heads, d_H 32, vocabulary 512) in bf16
(this CPU's native 16-bit type; DynamicCache then holds a 16-bit cache, as fp16 on a GPU), greedy,
one thread. GEAR: b = 2, g = 64, s = 2 %, r = 4 (prompt) / 2 (decode chunks of 64 tokens).

1. **One decode step, counted** (batch ``--batch``, after the prompt and 5 steps; no chunk is
   compressed at that step): aten ops dispatched and bytes of the new tensors they allocated
   (`StepCounter`, a TorchDispatchMode: an op output whose storage is none of its inputs' is new),
   and the peak of those bytes alive at once.
2. **Equal batch**: tokens/s (prefill included) at ``--batch``, repetitions interleaved, medians.
3. **Fixed memory budget (modelled)**: for each cache the largest batch whose weights + KV +
   activations fit ``--budget-mib``, from measured sizes: the bytes the cache holds per sequence after
   prompt + new tokens (its stores, buffer and any decompressed working copy, `held_bytes`) and, for
   activations, the peak bytes of a decode step's new tensors per sequence. Then tokens/s measured
   at that batch. On a GPU the allocator's peak replaces the model
   (benchmarks/gear_gpu.py).
Writes benchmarks/results/gear_decode.{md,json}.
"""
from __future__ import annotations

import argparse
import statistics
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from benchmarks.common import SHARED_CPU_NOTE, command_line, write

DTYPE = torch.bfloat16
COUNT_AFTER = 5  # decode steps before the counted one (a step that compresses no chunk)


class StepCounter(TorchDispatchMode):
    """Counts the aten ops dispatched inside it, the bytes of the storages they newly allocate, and the
    peak of those storages' bytes alive at once (each is followed until it is freed)."""

    def __init__(self):
        super().__init__()
        self.ops = 0
        self.bytes = 0
        self.live = 0
        self.peak = 0

    def _freed(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.ops += 1
        inputs = {t.untyped_storage().data_ptr() for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        new = {}
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                new[t.untyped_storage().data_ptr()] = t.untyped_storage()
        for storage in new.values():
            nbytes = storage.nbytes()
            self.bytes += nbytes
            self.live += nbytes
            weakref.finalize(storage, self._freed, nbytes)
        self.peak = max(self.peak, self.live)
        return out


def held_bytes(cache) -> int:
    """Bytes of every tensor the cache holds: what it stores (`nbytes`/its tensors) plus any
    decompressed working copy (GEAR's materialised attention keeps one)."""
    from runners.generate.decode import kv_measured

    extra = sum(t.numel() * t.element_size() for layer in cache.layers
                for t in (getattr(layer, "work_k", None), getattr(layer, "work_v", None)) if t is not None)
    return kv_measured(cache) + extra


def model_and_caches():
    from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

    from methods.gear import GearConfig
    from methods.kivi import KIVIConfig

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=512, hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8,
                      num_key_value_heads=2)
    model = LlamaForCausalLM(cfg).to(DTYPE).eval()
    methods = {"DynamicCache (16-bit)": None, "KIVI-2": KIVIConfig(), "GEAR-L (2-bit)": GearConfig(outlier_frac=0.0),
               "GEAR (2-bit, materialise)": GearConfig(), "GEAR (2-bit, fused)": GearConfig(attention="fused")}
    for m in methods.values():
        if m is not None:
            m.prepare_model(model)  # registers gear_fused

    def use(name):
        """Set the model's attention for cache ``name`` and return a factory of fresh caches."""
        m = methods[name]
        model.set_attn_implementation(m.attn_implementation if m is not None and m.attn_implementation else "sdpa")
        return (lambda: DynamicCache(config=cfg)) if m is None else (lambda: m.make_cache(cfg))

    return model, list(methods), use


def prompt_ids(batch: int, length: int) -> torch.Tensor:
    return torch.randint(0, 512, (batch, length), generator=torch.Generator().manual_seed(1))


@torch.no_grad()
def decode(model, cache, prompt, new: int, counted: int | None = None):
    """Greedy decoding; (seconds, cache, StepCounter of decode step ``counted`` or None)."""
    from runners.generate.decode import Stepper

    counter = None
    t0 = time.perf_counter()
    s = Stepper(model, cache, prompt, torch.ones_like(prompt))
    for i in range(new - 1):
        if i == counted:
            counter = StepCounter()
            with counter:
                s.step(s.logits.argmax(-1))
        else:
            s.step(s.logits.argmax(-1))
    return time.perf_counter() - t0, cache, counter


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--prompt", type=int, default=512)
    p.add_argument("--new", type=int, default=64)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--budget-mib", type=float, default=12.0)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--count-only", action="store_true", help="only the counted step (section 1)")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model, names, use = model_and_caches()
    weights = sum(t.numel() * t.element_size() for t in model.parameters())
    tokens = args.prompt + args.new

    # 1. one step counted, and the sizes the budget is modelled from
    rows = {}
    for name in names:
        make = use(name)
        _, cache, counter = decode(model, make(), prompt_ids(args.batch, args.prompt), args.new, counted=COUNT_AFTER)
        rows[name] = {"step_ops": counter.ops, "step_bytes": counter.bytes, "step_peak_bytes": counter.peak,
                      "held_bytes_per_seq_token": held_bytes(cache) / (args.batch * tokens)}
    budget = args.budget_mib * 2**20
    for r in rows.values():
        per_seq = tokens * r["held_bytes_per_seq_token"] + r["step_peak_bytes"] / args.batch
        r["budget_batch"] = max(0, int((budget - weights) // per_seq))

    # 2. and 3. tokens/s at equal batch and at each cache's budget batch, interleaved
    runs = [] if args.count_only else [(name, which) for which in ("equal", "budget") for name in names]
    times = {run: [] for run in runs}
    for rep in range(args.reps):
        for name, which in runs[rep % max(1, len(runs)):] + runs[:rep % max(1, len(runs))]:
            batch = args.batch if which == "equal" else rows[name]["budget_batch"]
            if batch:
                make = use(name)
                times[name, which].append(batch * args.new / decode(model, make(), prompt_ids(batch, args.prompt),
                                                                    args.new)[0])
    for (name, which), tps in times.items():
        rows[name][f"{which}_tokens_per_s"] = statistics.median(tps) if tps else 0.0
    if args.count_only:
        for name, r in rows.items():
            print(f"{name}: {r['step_ops']} ops, {r['step_bytes']:,} bytes allocated, peak {r['step_peak_bytes']:,}")
        return rows

    md = markdown(rows, args, weights)
    print(md)
    if not args.no_write:
        write("gear_decode", {"rows": rows, "weights_bytes": weights, **vars(args)}, md,
              command=command_line("benchmarks.gear_decode", argv))
    return rows


def markdown(rows: dict, args, weights: int) -> str:
    base = rows["DynamicCache (16-bit)"]
    lines = ["# GEAR decode on CPU: per-step work, equal batch, fixed memory budget", "",
             f"Random-init LLaMA (d 256, 4 layers, 8 heads, 2 KV heads, d_H 32), bf16, greedy, prompt {args.prompt}, "
             f"{args.new} new tokens, 1 thread; tokens/s count the new tokens over the whole run (prefill included), "
             f"median of {args.reps} interleaved repetition(s). {SHARED_CPU_NOTE}", "",
             f"## One decode step (batch {args.batch}, after {COUNT_AFTER} decode steps; no chunk compressed in it)", "",
             "| cache | aten ops | bytes allocated | vs DynamicCache | peak bytes alive | vs DynamicCache |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['step_ops']:,} | {r['step_bytes']:,} | {r['step_bytes'] / base['step_bytes']:.2f}x | "
                     f"{r['step_peak_bytes']:,} | {r['step_peak_bytes'] / base['step_peak_bytes']:.2f}x |")
    lines += ["", f"## Tokens/s at equal batch ({args.batch}) and at a fixed budget of {args.budget_mib:g} MiB (modelled)",
              "", f"Weights: {weights:,} bytes. Budget batch: the largest B with weights + B x (tokens x held bytes "
              "per token + peak bytes of a decode step's new tensors per sequence) <= budget, from the sizes measured above "
              "(modelled: the CPU has no allocator peak to read).", "",
              "| cache | held bytes / token / sequence | vs 16-bit | tokens/s at equal batch | vs DynamicCache | "
              "budget batch | tokens/s at budget batch | vs DynamicCache |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['held_bytes_per_seq_token']:.0f} | "
            f"{r['held_bytes_per_seq_token'] / base['held_bytes_per_seq_token']:.2f} | {r['equal_tokens_per_s']:.1f} | "
            f"{r['equal_tokens_per_s'] / base['equal_tokens_per_s']:.2f}x | {r['budget_batch']} | "
            f"{r['budget_tokens_per_s']:.1f} | {r['budget_tokens_per_s'] / base['budget_tokens_per_s']:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
