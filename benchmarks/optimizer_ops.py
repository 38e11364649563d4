"""Operations one optimizer step dispatches: what a GPU pays in kernel launches and host time.

    python -m benchmarks.optimizer_ops [--before COMMIT]   # -> benchmarks/results/optimizer_ops.{md,json}

On a GPU a small model's optimizer step is bound by the host: every dispatched op is a kernel
launch of a few microseconds (benchmarks/results/gpu_cosmos.md: ~4,700 launches in an 87 ms
COSMOS step of LLaMA-130M with 41 ms of GPU time). This counts, on the CPU, the leaf aten ops of
one step (ops with no aten op inside them) of AdamW, Muon, SOAP and COSMOS on a model with
LLaMA-130M's structure (12 layers, three distinct matrix shapes, 84 matrices) at small widths:
the count does not depend on the widths. ``--before COMMIT`` counts the same in a checkout of an
earlier commit (a temporary git worktree, run in a subprocess) for a before/after table. On the
CPU the `torch._foreach` ops of the AdamW branches fall back to one op per tensor, so the counts
overstate a GPU's launches there (torch AdamW itself runs foreach only on CUDA).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

OPTIMIZERS = ("AdamW", "Muon", "SOAP", "COSMOS")
MODEL = dict(hidden_size=48, intermediate_size=128, num_layers=12, num_heads=4, vocab_size=64)


def count() -> dict:
    """Leaf aten ops of one step of each optimizer (after three warm-up steps), in this checkout."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from methods.cosmos import COSMOS
    from methods.muon import Muon
    from methods.soap import SOAP
    from reprolab.models.config import CausalLM
    from reprolab.params import decay_groups, matrix_branch_groups

    torch.manual_seed(0)
    model = CausalLM(**MODEL).build()
    make = {"AdamW": lambda: torch.optim.AdamW(decay_groups(model, 0.0), lr=1e-3),
            "Muon": lambda: Muon(matrix_branch_groups(model, "use_muon", {}, {"lr": 1e-3}), lr=0.02),
            "SOAP": lambda: SOAP(decay_groups(model, 0.0), precondition_frequency=10),
            "COSMOS": lambda: COSMOS(matrix_branch_groups(model, "use_cosmos", {}, {}), rank=16)}
    tokens = torch.randint(0, MODEL["vocab_size"], (2, 16))
    out = {}
    for name in OPTIMIZERS:
        opt = make[name]()
        for step in range(4):  # three warm-up steps (set-up, SOAP's first call), then the counted one
            model.zero_grad(set_to_none=True)
            model(input_ids=tokens).logits.sum().backward()
            if step < 3:
                opt.step()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            opt.step()
        ops = [e for e in prof.events() if e.name.startswith("aten::")]
        out[name] = sum(not any(c.name.startswith("aten::") for c in e.cpu_children) for e in ops)
    return out


def count_at(commit: str) -> dict:
    """`count` in a temporary worktree of ``commit`` (this module's code, that commit's optimizers)."""
    from reprolab.registry import ROOT

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "worktree", "add", "--detach", tmp, commit], cwd=ROOT, check=True, capture_output=True)
        try:  # this file, run by path, imports that checkout's methods/ and reprolab/
            env = {**os.environ, "PYTHONPATH": tmp}
            proc = subprocess.run([sys.executable, __file__, "--count"], cwd=tmp, env=env, capture_output=True,
                                  text=True, check=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", tmp], cwd=ROOT, capture_output=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", help="an earlier commit to count too (git worktree)")
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--count", action="store_true", help=argparse.SUPPRESS)  # count_at's subprocess
    args = p.parse_args(argv)
    if args.count:
        print(json.dumps(count()))
        return None
    from benchmarks.common import command_line, write

    now = count()
    before = count_at(args.before) if args.before else None
    lines = ["Leaf aten ops dispatched by one optimizer step (CPU count, a proxy for GPU kernel launches), "
             f"model: {MODEL['num_layers']} layers with LLaMA-130M's structure (84 matrices, 3 shapes) at small widths.", ""]
    if before:
        lines += [f"| optimizer | at {args.before[:7]} | now | ratio |", "|---|---|---|---|"]
        lines += [f"| {k} | {before[k]:,} | {now[k]:,} | {before[k] / now[k]:.1f}x |" for k in OPTIMIZERS]
    else:
        lines += ["| optimizer | ops per step |", "|---|---|"] + [f"| {k} | {now[k]:,} |" for k in OPTIMIZERS]
    md = "\n".join(lines) + "\n"
    print(md)
    if not args.no_write:
        write("optimizer_ops", {"now": now, "before": before, "before_commit": args.before}, md,
              command=command_line("benchmarks.optimizer_ops", argv))
    return now, before


if __name__ == "__main__":
    main()
