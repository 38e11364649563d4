"""A paper's W&B dashboard, as code.

    python -m experiments.dashboard <paper> [--out DIR]                    # offline: the definition + a note
    python -m experiments.dashboard <paper> --push [--entity E] [--project P] [--runs DIR] [--dry-run]
    make dashboard PAPER=<paper> [ARGS=--push]

Offline it builds the report from ``experiments/<paper>/*.yaml`` and ``experiments/<paper>/dashboard.py`` and
writes ``dashboard.json`` (W&B's own form of the report) and ``dashboard.md`` (what will appear) to ``--out``
(default ``experiments/<paper>/results``). ``--push`` then syncs the offline runs of the paper's tables and
its latest report run (``wandb sync``) and saves the report, printing its URL; without a login or a
reachable server it stops at once, saying which; ``--dry-run`` lists what it would sync, offline.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments.tables import EXPERIMENTS_DIR, TableError


def provenance(paper: str) -> dict:
    from reprolab.rundir import git_state, machine_line

    state = git_state()
    return {"command": f"python -m experiments.dashboard {paper}",
            "commit": (state.get("commit") or "unknown") + (" (with uncommitted changes)" if state.get("dirty") else ""),
            "machine": machine_line()}


def note(dash, made: dict) -> str:
    """What the report will show, section by section, in Markdown."""
    from experiments.dashboard.build import panel_keys, report_filter, report_keys, runs_filter
    from experiments.dashboard.spec import STEP, config_key

    lines = [f"# W&B dashboard: {dash.paper}", "",
             f"- command: `{made['command']}`", f"- commit: `{made['commit']}`", f"- machine: {made['machine']}",
             f"- definition: `dashboard.json` (the report as W&B stores it), from `experiments/{dash.paper}/*.yaml`"
             + (f" and `experiments/{dash.paper}/dashboard.py`" if dash.spec else " with default panels (no dashboard.py)"),
             "", "To put it on W&B after the runs (each run, and the report step that rebuilds the tables after a "
             "run or a sweep, log offline under logs/; `logger=csv` runs log nothing to sync):", "", "```bash",
             "wandb login   # once per machine",
             f"python -m experiments.dashboard {dash.paper} --push --entity <you>   # sync the runs, save this report",
             "```", ""]
    for s in dash.sections:
        table_key, png_key = report_keys(s.table.name)
        lines += [f"## {s.table.title}", "",
                  f"- table: `{table_key}` (row, column, metric, mean, std, n seeds, paper) and its plot `{png_key}`, "
                  f"from the report run ({report_filter(dash.paper)})",
                  f"- runs: {runs_filter(s) or 'none defined in conf/experiment'}"]
        for p in s.plots:
            group = ", ".join(f"`{config_key(g)}`" for g in p.groupby) or "none (one per run)"
            axes = ", ".join(str(k) for k in p.y) + (f" vs {p.x}" if p.x and p.x.name != STEP else
                                                     " vs W&B's step" if p.x else " (one bar per group)")
            lines.append(f"- {p.kind} plot \"{p.label}\": {axes}; grouped by {group}")
        lines += ["- commands:", "", "  ```bash", *[f"  {c}" for c in s.commands], "  ```", ""]
    keys = sorted({str(k) for _, k in panel_keys(dash)})
    lines += ["Keys the panels read from the runs: " + ", ".join(f"`{k}`" for k in keys) + "."]
    return "\n".join(lines) + "\n"


def write(paper: str, out: Path) -> tuple[Path, Path]:
    from experiments.dashboard import build, spec
    from reprolab.rundir import atomic_write

    dash = spec.load(paper)
    made = provenance(paper)
    out.mkdir(parents=True, exist_ok=True)
    definition = {"made_by": made, "report": build.spec_json(build.report(dash))}
    atomic_write(out / "dashboard.json", json.dumps(definition, indent=1, ensure_ascii=False) + "\n")
    atomic_write(out / "dashboard.md", note(dash, made))
    return out / "dashboard.json", out / "dashboard.md"


def main(argv=None) -> None:
    from reprolab.registry import ROOT

    p = argparse.ArgumentParser(prog="python -m experiments.dashboard", description=__doc__.split("\n")[0])
    p.add_argument("paper", help="a folder of experiments/ with table YAMLs")
    p.add_argument("--out", type=Path, default=None, help="where to write dashboard.json/.md (default experiments/<paper>/results)")
    p.add_argument("--push", action="store_true", help="sync the offline runs and save the report to W&B (needs a login)")
    p.add_argument("--entity", default=None, help="W&B entity for --push (default: your default entity)")
    p.add_argument("--project", default="reprolab", help="W&B project for --push (default: reprolab, as the runs log)")
    p.add_argument("--runs", type=Path, default=ROOT / "logs", help="folder holding the run folders, for --push")
    p.add_argument("--dry-run", action="store_true", help="with --push: list the offline runs it would sync, send nothing")
    args = p.parse_args(argv)
    from experiments.dashboard import push, spec

    try:
        if args.push and not args.dry_run:
            push.preflight()  # before anything else: no login or no network stops here, at once
        files = write(args.paper, args.out or EXPERIMENTS_DIR / args.paper / "results")
        print(f"written: {files[0]}, {files[1]}")
        if args.push and args.dry_run:
            runs = push.offline_runs(spec.load(args.paper), args.runs)
            print(f"--push would sync {len(runs)} offline runs to {args.entity or '<your default entity>'}/{args.project} "
                  "and save the report there:", *runs, sep="\n  ")
        elif args.push:
            print(push.push(spec.load(args.paper), args.runs, args.entity, args.project))
    except (TableError, push.PushError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
