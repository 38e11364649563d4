"""Optimizer step time and state memory for one weight matrix on CPU: COSMOS vs AdamW, Muon, SOAP.

    python -m benchmarks.cosmos_step [--shapes 256x256,768x768,768x2048,2048x768,2048x2048] [--reps 5] [--threads 1]

Targets (issue 20, restating issue 3): at the default (auto) Newton-Schulz precision, COSMOS <= 1.25x
Muon and <= 1.0x SOAP per step (the paper's own claim: COSMOS no slower than SOAP), SOAP amortised
over its refresh period (precondition_frequency 10); optimizer state exactly the cosmos.md §2.8 formulas.

Method: one process, one m x n parameter per optimizer, gradients cycled from a fixed set. After
warm-up (COSMOS's step-1 SVD, SOAP's preconditioner-only first step, one full SOAP period), every
repetition times each optimizer in turn (interleaved, so load from other processes hits them
alike; the order rotates, so each optimizer follows each other one, whose memory traffic has
evicted its state from the caches, equally often): one step for AdamW, Muon and COSMOS, a whole
refresh period of 10 steps for SOAP (reported per step). Medians over repetitions. COSMOS runs
with its defaults (``ns_space`` auto: Newton-Schulz in the complement of its basis where that
pays) and, as "COSMOS (full NS)", with Newton-Schulz on the whole m x n residual (the official
code's). Newton-Schulz runs at ``ns_dtype`` auto for both Muon and COSMOS (`reprolab.kernels.cosmos.ns_dtype_for`: bf16
where the CPU has bf16 GEMMs, fp32 elsewhere); where auto is bf16, "Muon (fp32)" and "COSMOS (fp32)" time
the other precision in the same repetitions. Writes benchmarks/results/cosmos_step.{md,json}.
"""
from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import SHARED_CPU_NOTE, command_line, median_ms, write
from reprolab.params import optimizer_state_bytes

SHAPES = ((256, 256), (768, 768), (768, 2048), (2048, 768), (2048, 2048))  # LLaMA-130M: 768^2, 768x2048, 2048x768
SOAP_PERIOD = 10
TARGETS = {"COSMOS/Muon": 1.25, "COSMOS/SOAP": 1.0}


def auto_precision() -> str:
    """The Newton-Schulz dtype ``ns_dtype`` auto takes on this CPU, by name."""
    from reprolab.kernels.cosmos import ns_dtype_for

    return {torch.bfloat16: "bf16", torch.float32: "fp32"}[ns_dtype_for(torch.zeros(1))]


def state_formulas(m: int, n: int, r: int) -> dict[str, int]:
    """Optimizer-state elements of one m x n matrix, cosmos.md §2.8."""
    return {"AdamW": 2 * m * n, "Muon": m * n, "SOAP": 2 * m * n + 2 * m * m + 2 * n * n,
            "COSMOS": m * n + (m + n) * r + r * r}


def ns_flops(m: int, n: int) -> float:
    """Five fp32 Newton-Schulz iterations on an m x n matrix, Muon's association (X X^T, A A, B X)."""
    lo, hi = min(m, n), max(m, n)
    return 5 * (4 * lo * lo * hi + 2 * lo**3)


def step_flops(m: int, n: int, r: int) -> dict[str, float]:
    """GEMM + QR flops of one step of an m x n matrix: Muon's Newton-Schulz, COSMOS's (on m x (n - r)
    where its ``ns_space`` auto takes the complement) and SOAP's step with its refresh amortised
    over 10 steps (cosmos.md §3.2)."""
    from methods.cosmos.optimizer import complement_pays

    soap = 6 * m * n * (m + n)  # project in (2 GEMMs), project back (2), G G^T and G^T G
    refresh = 4 * m * n * (m + n) + sum(2 * k**3 + 8 * k**3 / 3 for k in (m, n))  # m out and back, P Q, QR + Q
    return {"Muon": ns_flops(m, n), "COSMOS NS": ns_flops(m, n - r if complement_pays(m, n, r) else n),
            "SOAP": soap + refresh / SOAP_PERIOD}


def make_optimizers(m: int, n: int, rank: int) -> dict:
    from methods.cosmos import COSMOS
    from methods.muon import Muon
    from methods.soap import SOAP

    def param(seed):
        return torch.nn.Parameter(torch.randn(m, n, generator=torch.Generator().manual_seed(seed)) * 0.02)

    makers = {
        "AdamW": lambda p: torch.optim.AdamW([p], lr=1e-3),
        "Muon": lambda p: Muon([p], lr=0.02),
        "SOAP": lambda p: SOAP([p], lr=3e-3, precondition_frequency=SOAP_PERIOD),
        "COSMOS": lambda p: COSMOS([p], lr=2e-3, rank=rank),
        "COSMOS (full NS)": lambda p: COSMOS([p], lr=2e-3, rank=rank, ns_space="full"),
    }
    if auto_precision() == "bf16":  # the other precision beside it (bf16 where auto is fp32 would be emulated)
        makers["Muon (fp32)"] = lambda p: Muon([p], lr=0.02, ns_dtype="float32")
        makers["COSMOS (fp32)"] = lambda p: COSMOS([p], lr=2e-3, rank=rank, ns_dtype="float32")
    params = {name: param(i) for i, name in enumerate(makers)}
    return {name: (params[name], make(params[name])) for name, make in makers.items()}


def bench_shape(m: int, n: int, rank: int, reps: int) -> dict:
    grads = [torch.randn(m, n, generator=torch.Generator().manual_seed(100 + i)) for i in range(4)]
    from reprolab.kernels.cosmos import newton_schulz5, ns_dtype_for
    from methods.cosmos.optimizer import complement_pays

    opts = make_optimizers(m, n, rank)
    counter = {"i": 0}
    # Newton-Schulz alone, at auto precision, on the matrix each optimizer orthogonalises (COSMOS: m x (n - r)
    # where it takes the complement): what is left of a step once it is taken away is the rest of its work
    ns_cols = {"NS of Muon": n, "NS of COSMOS": n - rank if complement_pays(m, n, rank) else n}
    ns_in = {name: torch.randn(1, m, cols, generator=torch.Generator().manual_seed(7)) for name, cols in ns_cols.items()}
    dtype = ns_dtype_for(grads[0])

    def step(name):
        if name in ns_in:
            newton_schulz5(ns_in[name], 5, "muon", dtype)
            return
        p, opt = opts[name]
        p.grad = grads[counter["i"] % len(grads)]
        counter["i"] += 1
        opt.step()

    names = list(opts) + list(ns_in)
    for name in names:  # warm-up: first steps (SVD, SOAP init) and one full SOAP period
        for _ in range(SOAP_PERIOD + 1 if name == "SOAP" else 2):
            step(name)
    samples = {name: [] for name in names}
    for rep in range(reps):  # rotate the order so that each optimizer follows each other one equally often
        for name in names[rep % len(names):] + names[:rep % len(names)]:
            k = SOAP_PERIOD if name == "SOAP" else 1
            t0 = time.perf_counter()
            for _ in range(k):
                step(name)
            samples[name].append((time.perf_counter() - t0) / k)
    ms = {name: median_ms(s) for name, s in samples.items()}
    ms["COSMOS rest"] = ms["COSMOS"] - ms["NS of COSMOS"]
    ms["Muon rest"] = ms["Muon"] - ms["NS of Muon"]
    formulas = state_formulas(m, n, rank)
    state = {}
    for name, (p, opt) in opts.items():
        measured = optimizer_state_bytes(opt, [p], skip=("step",))  # torch's AdamW keeps its step count as a tensor
        formula = formulas[name.split(" (")[0]]
        state[name] = {"bytes": measured, "formula_bytes": 4 * formula, "exact": measured == 4 * formula}
    ratios = {"COSMOS/Muon": ms["COSMOS"] / ms["Muon"], "COSMOS/SOAP": ms["COSMOS"] / ms["SOAP"],
              "Muon/SOAP": ms["Muon"] / ms["SOAP"], "COSMOS/AdamW": ms["COSMOS"] / ms["AdamW"],
              "COSMOS (full NS)/Muon": ms["COSMOS (full NS)"] / ms["Muon"]}
    if "COSMOS (fp32)" in ms:
        ratios.update({"COSMOS (fp32)/Muon (fp32)": ms["COSMOS (fp32)"] / ms["Muon (fp32)"],
                       "COSMOS (fp32)/SOAP": ms["COSMOS (fp32)"] / ms["SOAP"],
                       "Muon (fp32)/Muon": ms["Muon (fp32)"] / ms["Muon"]})
    return {"shape": [m, n], "rank": rank, "reps": reps, "ms": ms, "precision": auto_precision(), "ratios": ratios,
            "flops": step_flops(m, n, rank),
            "state": state}


def profile_cosmos(m: int, n: int, rank: int, steps: int = 10) -> str:
    """Top ops by self CPU time over ``steps`` COSMOS steps (after warm-up), as torch.profiler's table."""
    from benchmarks.common import profile_once

    p, opt = make_optimizers(m, n, rank)["COSMOS"]
    grads = [torch.randn(m, n, generator=torch.Generator().manual_seed(100 + i)) for i in range(4)]

    def run(k):
        for i in range(k):
            p.grad = grads[i % len(grads)]
            opt.step()

    run(3)
    return profile_once(lambda: run(steps), cuda=False, rows=16)["table"]


def markdown(rows: list[dict], threads: int) -> str:
    from reprolab.kernels.cosmos import BF16_CPU_FLAGS, cpu_flags

    precision = rows[0]["precision"]
    flags = sorted(BF16_CPU_FLAGS & cpu_flags()) or ["none"]
    other = "COSMOS (fp32)" in rows[0]["ms"]
    lines = ["# COSMOS optimizer step on CPU vs AdamW, Muon, SOAP (f = 10)", "",
             f"One weight matrix per optimizer, fp32 weights and state, {threads} intra-op thread(s). Newton-Schulz "
             f"(Muon, COSMOS) at `ns_dtype` auto, which chose **{precision}** on this CPU (its bf16 GEMM flags: "
             f"{', '.join(flags)}; `reprolab.kernels.cosmos.native_bf16`)"
             + ("; the fp32 columns time Muon and COSMOS with `ns_dtype=float32` in the same repetitions. " if other
                else ". ")
             + "SOAP's time is per step, amortised over one refresh period (10 steps). Median of interleaved "
             "repetitions. COSMOS: the defaults (Newton-Schulz in the complement of the basis where `complement_pays`, "
             "column \"NS on\"); COSMOS (full NS): Newton-Schulz on the whole m x n residual, as the official code.",
             SHARED_CPU_NOTE, "",
             f"| shape | rank | AdamW ms | Muon ms | SOAP ms | COSMOS ms | NS on | COSMOS (full NS) ms | "
             f"COSMOS/Muon (target <= {TARGETS['COSMOS/Muon']}) | full NS/Muon | "
             f"COSMOS/SOAP (target <= {TARGETS['COSMOS/SOAP']}) |"
             + (" Muon fp32 ms | COSMOS fp32 ms | fp32: COSMOS/Muon | fp32: COSMOS/SOAP |" if other else "")
             + " state bytes = §2.8 formulas |",
             "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|---|---|" if other else "") + "---|"]
    for r in rows:
        ms, ratio, flops = r["ms"], r["ratios"], r["flops"]
        (m, n), k = r["shape"], r["rank"]
        ok = lambda key: "met" if ratio[key] <= TARGETS[key] else "**missed**"  # noqa: E731
        exact = all(s["exact"] for s in r["state"].values())
        space = f"{m} x {n - k}" if flops["COSMOS NS"] != flops["Muon"] else f"{m} x {n}"
        fp32 = (f" {ms['Muon (fp32)']:.3g} | {ms['COSMOS (fp32)']:.3g} | {ratio['COSMOS (fp32)/Muon (fp32)']:.2f} | "
                f"{ratio['COSMOS (fp32)/SOAP']:.2f} |") if other else ""
        lines.append(
            f"| {m}x{n} | {k} | {ms['AdamW']:.3g} | {ms['Muon']:.3g} | {ms['SOAP']:.3g} | {ms['COSMOS']:.3g} | "
            f"{space} | {ms['COSMOS (full NS)']:.3g} | {ratio['COSMOS/Muon']:.2f} ({ok('COSMOS/Muon')}) | "
            f"{ratio['COSMOS (full NS)/Muon']:.2f} | {ratio['COSMOS/SOAP']:.2f} ({ok('COSMOS/SOAP')}) |{fp32} "
            f"{'exact' if exact else '**differs**'} |")
    lines += ["", f"Where the time goes ({precision} Newton-Schulz timed alone on the matrix each step orthogonalises, "
              "in the same repetitions; \"rest\" = the step minus it: for COSMOS the rank-r GEMMs, the QR, the "
              "rotations into and out of the complement, the moments and the update, all fp32):", "",
              "| shape | Muon ms | its NS ms | Muon rest ms | COSMOS ms | its NS ms | COSMOS rest ms | SOAP ms | "
              "COSMOS rest / Muon |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms = r["ms"]
        lines.append(f"| {r['shape'][0]}x{r['shape'][1]} | {ms['Muon']:.3g} | {ms['NS of Muon']:.3g} | "
                     f"{ms['Muon rest']:.3g} | {ms['COSMOS']:.3g} | {ms['NS of COSMOS']:.3g} | {ms['COSMOS rest']:.3g} | "
                     f"{ms['SOAP']:.3g} | {ms['COSMOS rest'] / ms['Muon']:.2f} |")
    lo, hi = (f(r["ratios"]["COSMOS/Muon"] for r in rows) for f in (min, max))
    slo, shi = (f(r["ratios"]["COSMOS/SOAP"] for r in rows) for f in (min, max))
    lines += ["", f"At {precision} Newton-Schulz COSMOS/Muon is {lo:.2f}-{hi:.2f} and COSMOS/SOAP {slo:.2f}-{shi:.2f} in "
              "this run."]
    if other:
        speed = [r["ratios"]["Muon (fp32)/Muon"] for r in rows]
        lines[-1] += (f" Muon's step with fp32 Newton-Schulz takes {min(speed):.2f}-{max(speed):.2f}x its time with "
                      "bf16 (column Muon fp32 ms over Muon ms).")
    lines += ["", "Every COSMOS step runs five Newton-Schulz iterations on its residual: on m x (n - r) where it takes "
              "the complement of the basis, else on m x n like Muon (methods/cosmos/optimizer.py, `ns_space`); they "
              "cost 5 (4 k^2 N + 2 k^3) flops (k <= N the two sides), SOAP's step 6 mn (m + n) plus its refresh "
              "amortised over 10 steps (`step_flops`). Against Muon, COSMOS adds six m x n x r GEMMs (12 mnr flops; "
              "the complement path two more, for the two rotations), a QR of n x r and about 50 small ops, all in "
              "fp32, and it reads more state (M, U, S, V). bf16 speeds up only the Newton-Schulz part, so those "
              "fixed costs weigh more at bf16 than they did at fp32. COSMOS's state stays close to Muon's and far "
              "below SOAP's.",
              "", "State bytes (measured from the optimizers' state dicts, step counters aside; equal to the formula "
              "times 4 bytes where the table above says exact):", "",
              "| shape | AdamW | Muon | SOAP | COSMOS |", "|---|---|---|---|---|"]
    for r in rows:
        s = r["state"]
        lines.append(f"| {r['shape'][0]}x{r['shape'][1]} | " + " | ".join(
            f"{s[k]['bytes']:,}" for k in ("AdamW", "Muon", "SOAP", "COSMOS")) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default=",".join(f"{m}x{n}" for m, n in SHAPES))
    p.add_argument("--rank", type=int, default=64)
    p.add_argument("--reps", type=int, default=9, help="repetitions per shape: at most 5 for shapes with 2048 rows, "
                   "20x as many for shapes of at most 512x512 (milliseconds each, and the noisiest)")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: steadier on a shared CPU)")
    p.add_argument("--no-write", action="store_true", help="print only")
    p.add_argument("--profile", action="store_true", help="instead: profile 10 COSMOS steps per shape (top ops by self "
                   "CPU time), to see what the rest of a step is")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    if args.profile:
        for m, n in shapes:
            print(f"== {m}x{n}, rank {min(args.rank, m, n)}\n" + profile_cosmos(m, n, min(args.rank, m, n)))
        return []
    rows = []
    for m, n in shapes:
        reps = min(args.reps, 5) if m >= 2048 else args.reps * (20 if m * n <= 512 * 512 else 1)
        rows.append(bench_shape(m, n, min(args.rank, m, n), reps))
        r = rows[-1]
        print(f"{m}x{n}: " + ", ".join(f"{k} {v:.3g} ms" for k, v in r["ms"].items()) + " | " +
              ", ".join(f"{k} {v:.2f}" for k, v in r["ratios"].items()), flush=True)
    md = markdown(rows, args.threads)
    if not args.no_write:
        path = write("cosmos_step", {"rows": rows, "threads": args.threads}, md,
                     command=command_line("benchmarks.cosmos_step", argv))
        print(f"written: {path}")
    return rows


if __name__ == "__main__":
    main()
