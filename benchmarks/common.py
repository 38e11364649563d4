"""Helpers shared by benchmarks: provenance header and result files."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def provenance() -> dict:
    from reprolab.rundir import git_state, machine, versions

    return {"command": "python -m " + " ".join([Path(sys.argv[0]).stem if sys.argv[0].endswith("__main__.py") else
                                                 sys.argv[0], *sys.argv[1:]]),
            "date": time.strftime("%Y-%m-%d %H:%M %Z"), **git_state(), "machine": machine(), "versions": versions()}


def write(name: str, numbers: dict, markdown: str) -> Path:
    """Write results/<name>.json (numbers + provenance) and results/<name>.md (the human table)."""
    from reprolab.rundir import atomic_write

    prov = provenance()
    atomic_write(RESULTS / f"{name}.json", json.dumps({**numbers, "provenance": prov}, indent=2, default=str) + "\n")
    head = (f"Command: `{prov['command']}`  \nCommit: {prov['commit']}{' (dirty)' if prov['dirty'] else ''}  \n"
            f"Machine: {prov['machine']}  \nDate: {prov['date']}\n\n")
    path = RESULTS / f"{name}.md"
    atomic_write(path, head + markdown)
    return path
