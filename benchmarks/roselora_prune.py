"""RoseLoRA's pruning step against a LoRA training step, and the adapter's memory (CPU, the tiny LLaMA).

The pruning step is what RoseLoRA adds to a LoRA step: the importance EMA update (|g ⊙ w|, before
``optimizer.step()``) and the per-row / per-column selection with its clamp (after it), at the final kept
fraction ρ = 0.05 (`methods.roselora.pruning`). It is timed against one LoRA training step (forward, backward,
Adam update; q, v, r 8) of the same model in two regimes: an edit step (one fact prompt, 7 tokens: the editing
analog) and a fine-tuning step (batch 8 x 128 tokens). Target (issue 17): pruning <= 15 % of a LoRA step on
the tiny LM. The grouped pruner (one stacked kthvalue per shape group) is also timed against the same math run
layer by layer, on the tiny LM (4 matrices) and on a 16-layer d-512 stack (32 matrices). Memory: adapter
parameters and importance state, in floats, for LoRA and RoseLoRA, on the tiny LM and on LLaMA-2-7B's q, v
(built on the meta device: no weights). Repetitions alternate the variants; medians.

    python -m benchmarks.roselora_prune [--reps 5] [--steps 10]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def _model(layers=2, hidden=128, vocab=256):
    from reprolab.models.config import CausalLM

    torch.manual_seed(0)
    return CausalLM(hidden_size=hidden, intermediate_size=4 * hidden, num_layers=layers, num_heads=4).build(vocab)


def _wrapped(adapter_cfg, **kw):
    model = adapter_cfg.wrap(_model(**kw)).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    return model, opt


def _timed(fn, steps) -> float:
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times[1:])


def lora_step_ms(model, opt, batch, steps) -> float:
    def once():
        opt.zero_grad(set_to_none=True)
        model(batch, labels=batch).loss.backward()
        opt.step()
    return _timed(once, steps)


def prune_ms(pruner, steps, per_layer: bool) -> float:
    """The importance update and the prune at rate 0.05 (gradients left in place by one backward pass)."""
    prune = prune_per_layer if per_layer else type(pruner).prune
    return _timed(lambda: (pruner.update_importance(), prune(pruner, 0.05)), steps)


@torch.no_grad()
def prune_per_layer(pruner, rate) -> None:
    """The same selection, one layer at a time (the reference the grouped pruner is compared with)."""
    from methods.roselora.pruning import keep_mask

    for g in pruner.groups:
        score_a, score_b = pruner.scores(g)
        for params, score, dim in ((g.a, score_a, -1), (g.b, score_b, -2)):
            for p, s in zip(params, score.unbind(0)):
                mask = keep_mask(s, rate, dim, pruner.selection)
                p.mul_(mask)
                p.clamp_(-pruner.clamp, pruner.clamp)


def memory(model, pruner=None) -> dict:
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"adapter_params": params, "importance_state": pruner.state_numel() if pruner else 0}


def main(argv=None) -> None:
    from benchmarks.common import SHARED_CPU_NOTE, write
    from methods.lora import LoRAAdapterConfig
    from methods.roselora import RoseLoRAAdapterConfig
    from methods.roselora.adapter import pruner_of

    p = argparse.ArgumentParser()
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    regimes = {"edit step (1 x 7 tokens)": torch.randint(0, 256, (1, 7), generator=g),
               "fine-tuning step (8 x 128 tokens)": torch.randint(0, 256, (8, 128), generator=g)}
    lora = LoRAAdapterConfig(alpha=32, dropout=0.1)
    rose = RoseLoRAAdapterConfig()
    lora_model, lora_opt = _wrapped(lora)
    rose_model, _ = _wrapped(rose)
    x = regimes["edit step (1 x 7 tokens)"]
    rose_model(x, labels=x).loss.backward()  # gradients for the importance update
    tiny = pruner_of(rose_model)
    wide_model, _ = _wrapped(rose, layers=16, hidden=512)
    wide_model(x, labels=x).loss.backward()
    wide = pruner_of(wide_model)

    step = {n: [] for n in regimes}
    pr = {"grouped": [], "per layer": [], "grouped, 16 x d 512": [], "per layer, 16 x d 512": []}
    for _ in range(args.reps):
        for name, batch in regimes.items():
            step[name].append(lora_step_ms(lora_model, lora_opt, batch, args.steps))
        pr["grouped"].append(prune_ms(tiny, args.steps, False))
        pr["per layer"].append(prune_ms(tiny, args.steps, True))
        pr["grouped, 16 x d 512"].append(prune_ms(wide, args.steps, False))
        pr["per layer, 16 x d 512"].append(prune_ms(wide, args.steps, True))
    st = {n: statistics.median(v) for n, v in step.items()}
    pm = {n: statistics.median(v) for n, v in pr.items()}
    ratio = {n: pm["grouped"] / st[n] for n in regimes}

    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        big = LlamaForCausalLM(LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                           num_attention_heads=32, vocab_size=32000))
    big_lora = memory(LoRAAdapterConfig(alpha=32).wrap(big))
    with torch.device("meta"):
        big = LlamaForCausalLM(big.config)
    big_rose_model = rose.wrap(big)
    mem = {"tiny LM, LoRA": memory(lora_model), "tiny LM, RoseLoRA": memory(rose_model, tiny),
           "LLaMA-2-7B q, v, LoRA": big_lora,
           "LLaMA-2-7B q, v, RoseLoRA": memory(big_rose_model, pruner_of(big_rose_model))}

    md = [f"Tiny LLaMA (d 128, ffn 512, 2 layers, 4 heads, vocab 256), q and v adapted (r 8, 4 matrices), fp32, 1 "
          f"thread; medians of {args.steps} steps in each of {args.reps} interleaved repetitions. Pruning = importance "
          "EMA update + per-row/column kthvalue selection + clamp at rate 0.05. Target: pruning <= 15 % of a LoRA "
          "training step.", "",
          "| LoRA training step | ms | RoseLoRA pruning step (ms) | pruning / LoRA step | target met |",
          "|---|---|---|---|---|"]
    for n in regimes:
        md.append(f"| {n} | {st[n]:.2f} | {pm['grouped']:.3f} | {100 * ratio[n]:.1f} % | "
                  f"{'yes' if ratio[n] <= 0.15 else 'no'} |")
    md += ["", "Grouped (one stacked selection per shape group, `torch._foreach_*` for the masks) vs the same math "
           "layer by layer:", "", "| model | grouped ms | per layer ms | speed-up |", "|---|---|---|---|",
           f"| tiny LM (4 matrices of 128 x 128) | {pm['grouped']:.3f} | {pm['per layer']:.3f} | "
           f"{pm['per layer'] / pm['grouped']:.2f}x |",
           f"| 16 layers, d 512 (32 matrices) | {pm['grouped, 16 x d 512']:.3f} | {pm['per layer, 16 x d 512']:.3f} | "
           f"{pm['per layer, 16 x d 512'] / pm['grouped, 16 x d 512']:.2f}x |",
           "", "Memory (floats; the importance EMA is fp32, Adam's two moments come on top for both):", "",
           "| model, adapter | adapter params | importance state | total | vs LoRA |", "|---|---|---|---|---|"]
    for n, m in mem.items():
        lora_total = mem[n.replace("RoseLoRA", "LoRA")]["adapter_params"]
        total = m["adapter_params"] + m["importance_state"]
        md.append(f"| {n} | {m['adapter_params']:,} | {m['importance_state']:,} | {total:,} | "
                  f"{total / lora_total:.2f}x |")
    md += ["", SHARED_CPU_NOTE]
    print("\n".join(md))
    write("roselora_prune", {"lora_step_ms": st, "prune_ms": pm, "prune_over_lora_step": ratio,
                             "memory_floats": mem, "all_lora_step_ms": step, "all_prune_ms": pr, **vars(args)},
          "\n".join(md) + "\n")


if __name__ == "__main__":
    main()
