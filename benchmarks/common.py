"""Helpers shared by the benchmark modules: provenance, medians, result files."""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
RUNNING: str | None = None  # the benchmark `python -m benchmarks` is running now (it calls each main with no args)

SHARED_CPU_NOTE = ("The CPU is shared with other engineers' jobs running at the same time: absolute times are noisy; "
                   "the ratios come from interleaved repetitions in one process (medians), which cancels most of it.")


def command_line(module: str, argv: list[str] | None = None) -> str:
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["python -m", module, *args])


def median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def provenance(command: str | None = None) -> dict:
    from reprolab.rundir import git_state, machine, versions

    if command is None:
        argv0 = Path(sys.argv[0])
        if argv0.parent.name != "benchmarks":
            command = " ".join(["python", *sys.argv])
        elif argv0.stem == "__main__":  # `python -m benchmarks a b` runs each one as `python -m benchmarks.<name>`
            command = f"python -m benchmarks.{RUNNING}" if RUNNING else " ".join(["python -m benchmarks", *sys.argv[1:]])
        else:
            command = " ".join([f"python -m benchmarks.{argv0.stem}", *sys.argv[1:]])
    return {"command": command, "date": time.strftime("%Y-%m-%d %H:%M %Z"), **git_state(), "machine": machine(),
            "versions": versions()}


def provenance_markdown(prov: dict) -> str:
    from reprolab.rundir import machine_line

    v = prov["versions"]
    return (f"Command: `{prov['command']}`  \nCommit: {prov['commit']}"
            f"{' (with uncommitted changes)' if prov['dirty'] else ''}  \n"
            f"Machine: {machine_line(prov['machine'])}  \n"
            f"Versions: python {v.get('python')}, torch {v.get('torch')}  \nDate: {prov['date']}\n\n")


def write(name: str, numbers: dict, markdown: str, command: str | None = None) -> Path:
    """results/<name>.json (numbers + provenance) and results/<name>.md (provenance, then the table)."""
    from reprolab.rundir import atomic_write

    prov = provenance(command)
    atomic_write(RESULTS / f"{name}.json", json.dumps({**numbers, "provenance": prov}, indent=2, default=str) + "\n")
    path = RESULTS / f"{name}.md"
    atomic_write(path, provenance_markdown(prov) + markdown)
    return path


def profile_once(fn, cuda: bool, rows: int = 12) -> dict:
    """Run ``fn()`` once under torch.profiler: its GPU operations (kernels, copies, memsets; CUDA
    only), their GPU time, and the top ops by self CPU time as a table."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    if cuda:
        torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize()
    events = prof.key_averages()
    # not the user annotations (e.g. an optimizer step's), whose GPU span would count the work again
    gpu = [e for e in events if e.device_type == DeviceType.CUDA and not e.is_user_annotation]
    return {"gpu_ops": sum(e.count for e in gpu), "device_ms": sum(e.self_device_time_total for e in gpu) / 1000,
            "table": events.table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=48)}
