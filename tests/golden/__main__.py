"""Rerun the golden runs and rewrite their files, saying what moved.

    python -m tests.golden                    # every fast golden run: rerun, print what moved, rewrite
    python -m tests.golden --slow             # ... and the slow ones (the full 300-step quickstart)
    python -m tests.golden quickstart_adamw   # only these (names: tests/golden/runs.py)
    python -m tests.golden --check            # compare only; exit 1 if a file is beyond its tolerance
    python -m tests.golden --check --threads 2   # how much another summation order moves each run

--check holds a file made on this machine (its `machine` line) to the bit, others to the file's tolerance;
--threads compares with the file's tolerance.

A file whose numbers did not move (bit for bit) is left as it is, so its commit line keeps saying which
commit made them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time

os.environ.setdefault("WANDB_MODE", "offline")

from tests.golden.runs import BY_NAME, GOLDEN, header, make, tolerance  # noqa: E402
from tests.golden.table import compare, describe, read, write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.golden", description=__doc__.split("\n")[0])
    p.add_argument("names", nargs="*", help=f"golden runs (default: all fast ones): {', '.join(BY_NAME)}")
    p.add_argument("--check", action="store_true", help="compare only, write nothing")
    p.add_argument("--slow", action="store_true", help="include the slow runs")
    p.add_argument("--threads", type=int, help="with --check: run with this many torch threads instead of 1")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in BY_NAME]
    if unknown:
        p.error(f"unknown golden run {unknown}; known: {', '.join(BY_NAME)}")
    if args.threads and not args.check:
        p.error("--threads measures how far another summation order moves the runs; it needs --check "
                "(the files are made with one thread)")
    chosen = [BY_NAME[n] for n in args.names] if args.names else [g for g in GOLDEN if args.slow or not g.slow]

    beyond = []
    for g in chosen:
        start = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            new = quietly(make, g, tmp, threads=args.threads)
        took = f"({time.time() - start:.1f} s)"
        if not g.path.exists():
            print(f"{g.path.name}: no golden file yet {took}")
            if not args.check:
                write(g.path, header(g), new)
                print("  written")
            continue
        old_header, old = read(g.path)
        rtol, atol, _ = (g.rtol, g.atol, "") if args.threads else tolerance(g, old_header)
        diffs = compare(old, new, rtol, atol)
        print(f"{g.path.name}: {took}\n  " + describe(diffs, old.key, rtol, atol).replace("\n", "\n  "))
        if any(d.beyond for d in diffs):
            beyond.append(g.name)
        stale = {k: v for k, v in header(g).items() if k in ("run", "tolerance") and old_header.get(k) != v}
        if args.check:
            if stale:
                print(f"  header is stale ({', '.join(stale)} differ from tests/golden/runs.py): regenerate")
                beyond.append(g.name)
        elif diffs or stale:
            write(g.path, header(g), new)
            print("  rewritten" + (f" (header: {', '.join(stale)} changed)" if stale and not diffs else ""))
    if args.check and beyond:
        print(f"beyond tolerance or stale: {', '.join(beyond)}")
        return 1
    return 0


def quietly(fn, *args, **kw):
    """``fn``'s result, its output (the run's results table, Lightning's notes) shown only if it fails."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            return fn(*args, **kw)
    except BaseException:
        sys.stderr.write(out.getvalue())
        raise


if __name__ == "__main__":
    sys.exit(main())
