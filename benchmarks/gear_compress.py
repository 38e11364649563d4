"""GEAR compression throughput on CPU (tokens of K and V compressed per second): this tree against a
baseline commit, side by side.

    python -m benchmarks.gear_compress [--base-commit 077abdc | --base TREE] [--tokens 4096] [--reps 5] [--threads 1]

What is timed: `methods.gear.compress.compress` on one LLaMA-7B-shaped layer (32 heads x d_H 128) of
``--tokens`` tokens, keys (per-channel groups) and values (per-token groups), b = 2, g = 64, s = 2 %
(official count), r = 4, 3 power-iteration loops, in packed storage (what a memory-saving run
stores: codes, fp16 scales/mins, COO outliers, fp16 factors) and in simulated storage (the fp16
reconstruction, the official accuracy runs'). Each tree runs in its own worker process (the two
trees' modules never mix: ``sys.path`` starts with the tree), on the same inputs (seeded), one worker
at a time, repetitions interleaved (this tree, the base, this tree, ...), medians reported: load from
other processes hits both alike. Both workers then compress once more and the packed results are
compared: codes, scales, mins and outliers bit for bit, the reconstruction's max |difference|.
The base is a temporary `git worktree` of ``--base-commit`` (the commit before the blocked
compression), or an existing tree given by ``--base``. Writes benchmarks/results/gear_compress.{md,json}.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.common import SHARED_CPU_NOTE, command_line, write

ROOT = Path(__file__).resolve().parent.parent
STORAGES = ("packed", "simulated")
STORED = ("codes", "scale", "mn", "out_idx", "out_val", "lr_q", "lr_p")
TARGET = 2.0  # issue 20: packed tokens/s >= 2x the baseline's
BASE_COMMIT = "077abdc"  # the last commit before compression worked in row blocks

# Runs inside a tree (argv: tree, tokens, threads); reads commands on stdin: "time <storage>" prints the
# seconds of one compression of the layer's K and V, "dump <file>" saves the packed results.
WORKER = r"""
import sys, time
tree, tokens, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, tree)
import torch
torch.set_num_threads(threads)
from methods.gear.compress import CodecSpec, QuantSpec, compress
gen = torch.Generator().manual_seed(0)
k = torch.randn(1, 32, tokens, 128, generator=gen).half()
v = torch.randn(1, 32, tokens, 128, generator=gen).half()
p0 = torch.rand(128, 4, generator=gen)
key, value = QuantSpec(2, "channel", 64), QuantSpec(2, "token", 64)
codecs = {s: CodecSpec(key, value, outlier_frac=0.02, outlier_count="official", storage=s)
          for s in ("packed", "simulated")}
run = lambda s: [compress(x, kind, codecs[s], 4, p0) for x, kind in ((k, "key"), (v, "value"))]
for s in codecs:
    run(s)  # warm-up
print("ready", flush=True)
for line in sys.stdin:
    cmd, arg = line.split()
    if cmd == "time":
        t0 = time.perf_counter()
        run(arg)
        print(time.perf_counter() - t0, flush=True)
    elif cmd == "dump":
        torch.save([{**{n: getattr(c, n) for n in %r}, "recon": c.materialize()} for c in run("packed")], arg)
        print("saved", flush=True)
""" % (STORED,)


class Worker:
    """A process compressing with the code of one tree."""

    def __init__(self, tree: Path, tokens: int, threads: int):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER, str(tree), str(tokens), str(threads)], cwd=tree,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ask_for("ready", None)

    def ask_for(self, expect: str | None, command: str | None) -> str:
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        if not line or (expect and line != expect):
            raise RuntimeError(f"benchmark worker failed (said {line!r}; its error is above)")
        return line

    def time(self, storage: str) -> float:
        return float(self.ask_for(None, f"time {storage}"))

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def compare(ours: list[dict], base: list[dict]) -> dict:
    """Per K/V: whether every stored tensor is bit-identical, and the reconstruction's max |difference|."""
    out = {}
    for kind, a, b in zip(("key", "value"), ours, base):
        same = {n: (a[n] is None and b[n] is None) or (a[n] is not None and b[n] is not None and torch.equal(a[n], b[n]))
                for n in STORED}
        out[kind] = {"identical": same, "recon_max_abs_diff": (a["recon"].float() - b["recon"].float()).abs().max().item()}
    return out


def measure(trees: dict[str, Path], tokens: int, reps: int, threads: int) -> tuple[dict, dict]:
    workers = {name: Worker(tree, tokens, threads) for name, tree in trees.items()}
    try:
        times = {(name, s): [] for name in workers for s in STORAGES}
        order = list(times)
        for rep in range(reps):  # rotate, so each follows each other one equally often
            for name, storage in order[rep % len(order):] + order[:rep % len(order)]:
                times[name, storage].append(workers[name].time(storage))
        with tempfile.TemporaryDirectory() as tmp:
            dumps = {}
            for i, (name, w) in enumerate(workers.items()):
                w.ask_for("saved", f"dump {tmp}/{i}.pt")
                dumps[name] = torch.load(f"{tmp}/{i}.pt")
    finally:
        for w in workers.values():
            w.close()
    tps = {f"{name} ({s})": tokens / statistics.median(ts) for (name, s), ts in times.items()}
    return tps, compare(dumps["this tree"], dumps["base"])


@contextlib.contextmanager
def worktree(commit: str):
    """A temporary detached `git worktree` of ``commit``, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(tree), commit], cwd=ROOT, check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


def commit_of(tree: Path) -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True).stdout.strip()


def markdown(tps: dict, same: dict, tokens: int, reps: int, threads: int, base_commit: str) -> str:
    lines = [f"# GEAR compression on CPU: this tree vs {base_commit}", "",
             f"Tokens of K and V compressed per second: one 32-head x d_H 128 layer, {tokens} tokens, b = 2, g = 64, "
             f"s = 2 % (official count), r = 4, 3 loops; median of {reps} interleaved repetitions, {threads} thread(s), "
             f"each tree in its own worker process. {SHARED_CPU_NOTE}", "",
             "| storage | this tree tokens/s | base tokens/s | this tree / base |", "|---|---|---|---|"]
    for s in STORAGES:
        ours, base = tps[f"this tree ({s})"], tps[f"base ({s})"]
        target = f" (target >= {TARGET:g}: {'met' if ours / base >= TARGET else '**missed**'})" if s == "packed" else ""
        lines.append(f"| {s} | {ours:,.0f} | {base:,.0f} | {ours / base:.2f}{target} |")
    lines += ["", "Packed results against the base's, same inputs:", "",
              "| | stored tensors bit-identical | reconstruction max abs diff |", "|---|---|---|"]
    for kind, r in same.items():
        diff = [n for n, ok in r["identical"].items() if not ok]
        lines.append(f"| {kind}s | {'all' if not diff else 'all but ' + ', '.join(diff)} | {r['recon_max_abs_diff']:.3g} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base-commit", default=BASE_COMMIT, help="the baseline commit (checked out in a temporary worktree)")
    p.add_argument("--base", type=Path, help="an existing tree to use as the baseline instead of --base-commit")
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    if args.base is not None and not (args.base / "methods" / "gear" / "compress.py").exists():
        p.error(f"--base {args.base} is not a reprolab tree (no methods/gear/compress.py); give a worktree of the "
                f"baseline commit, or leave --base out to check out --base-commit ({BASE_COMMIT}) in a temporary one")
    with (contextlib.nullcontext(args.base.resolve()) if args.base else worktree(args.base_commit)) as base:
        base_commit = commit_of(base)
        tps, same = measure({"this tree": ROOT, "base": base}, args.tokens, args.reps, args.threads)
    md = markdown(tps, same, args.tokens, args.reps, args.threads, base_commit)
    print(md)
    if not args.no_write:
        write("gear_compress", {"tokens_per_s": tps, "identical": same, "tokens": args.tokens, "reps": args.reps,
                                "threads": args.threads, "base_commit": base_commit}, md,
              command=command_line("benchmarks.gear_compress", argv))
    return tps


if __name__ == "__main__":
    main()
