"""Vectorised vs per-worker l1 LO oracle and CndG (pd_sliding's inner loop), in one process.

    python -m benchmarks numeric_cndg        # -> benchmarks/results/numeric_cndg.{md,json}

The issue asks for the l1 LO oracle vectorised across workers; this measures what that buys: one
batched call over m workers against m calls on single rows (the same arithmetic per row: the
results are bit-identical, checked here). Repetitions are interleaved and the median is reported;
the machine is shared (2 cores), so ratios are more meaningful than absolute times.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.common import write
from methods.pd_sliding import L1Ball, cndg


def timed(fn, reps: int = 1):
    t0 = time.perf_counter()
    for _ in range(reps):
        out = fn()
    return (time.perf_counter() - t0) / reps, out


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    torch.set_num_threads(1)
    X, g = L1Ball(1.0), torch.Generator().manual_seed(0)
    numbers = {}
    lines = ["Vectorised l1 LO oracle and CndG across workers vs a loop over workers (one process, one thread; "
             "medians of 7 interleaved repetitions; shared 2-core machine: compare the ratios).", "",
             "| workers m | dim | LO batched (us) | LO loop (us) | speed-up | CndG batched (ms) | CndG loop (ms) | "
              "speed-up | LO calls per row |", "|---|---|---|---|---|---|---|---|---|"]
    for m, d in ((8, 30), (32, 123), (64, 300)):
        grad = torch.randn(m, d, generator=g, dtype=torch.float64)
        c = torch.randn(m, d, generator=g, dtype=torch.float64)
        w0 = torch.zeros(m, d, dtype=torch.float64)
        lo_b, lo_l, cg_b, cg_l = [], [], [], []
        for _ in range(7):  # interleaved repetitions
            lo_b.append(timed(lambda: X.lo(grad), 200)[0])
            lo_l.append(timed(lambda: torch.cat([X.lo(grad[i:i + 1]) for i in range(m)]), 200)[0])
            t, (wb, calls, _) = timed(lambda: cndg(c, 5.0, w0, X, 1e-5, 10 ** 5))
            cg_b.append(t)
            t, wl = timed(lambda: torch.cat([cndg(c[i:i + 1], 5.0, w0[i:i + 1], X, 1e-5, 10 ** 5)[0] for i in range(m)]))
            cg_l.append(t)
        assert torch.equal(wb, wl)
        med = statistics.median
        numbers[f"m{m}_d{d}"] = {"lo_batched_s": med(lo_b), "lo_loop_s": med(lo_l), "cndg_batched_s": med(cg_b),
                                 "cndg_loop_s": med(cg_l)}
        lines.append(f"| {m} | {d} | {med(lo_b) * 1e6:.0f} | {med(lo_l) * 1e6:.0f} | {med(lo_l) / med(lo_b):.1f}x | "
                     f"{med(cg_b) * 1e3:.1f} | {med(cg_l) * 1e3:.1f} | {med(cg_l) / med(cg_b):.1f}x | "
                     f"{float(calls.double().mean()):.0f} |")
    print(write("numeric_cndg", numbers, "\n".join(lines) + "\n").read_text())


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
