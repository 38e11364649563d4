"""Shared helpers for the benchmark modules: provenance header, medians, result files."""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_CPU_NOTE = ("The CPU is shared with other engineers' jobs running at the same time: absolute times are noisy; "
                   "the ratios come from interleaved repetitions in one process (medians), which cancels most of it.")


def provenance(command: str) -> str:
    """Markdown lines: command, commit, machine, date."""
    from reprolab.rundir import git_state, machine, versions

    g, m, v = git_state(), machine(), versions()
    dirty = " (with uncommitted changes)" if g.get("dirty") else ""
    return (f"Command: `{command}`  \nCommit: {g.get('commit')}{dirty}  \n"
            f"Machine: {m['host']}, {m['platform']}, {m['cpus']} CPUs{', GPUs: ' + ', '.join(m['gpus']) if m.get('gpus') else ''}"
            f"  \nVersions: python {v.get('python')}, torch {v.get('torch')}  \nDate: {time.strftime('%Y-%m-%d %H:%M %Z')}")


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def command_line(module: str, argv: list[str] | None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m", module, *args])


def write(name: str, markdown: str, data: dict) -> Path:
    from reprolab.rundir import atomic_write

    md = RESULTS / f"{name}.md"
    atomic_write(md, markdown)
    atomic_write(RESULTS / f"{name}.json", json.dumps(data, indent=2) + "\n")
    return md
