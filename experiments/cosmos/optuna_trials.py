"""Every trial of the CPU analog's Optuna lr searches (conf/experiment/cosmos_tiny_optuna/) in the order they
started, and their best trial against the grid's best lr level: writes ``tiny_optuna_trials.md``.

    python -m experiments.cosmos.optuna_trials [--runs logs] [--out experiments/cosmos/results]

Trials: the finished run folders of logs/cosmos_optuna_<optimizer>/ (config.yaml, results.json, run.json), each
with its lr and table/best_val_loss. Start order: run.json's first start (to the second), then run.log's first
line (to the millisecond) for trials launched together (launcher=joblib runs two at a time).
Against the grid (results/optuna.md gives the commands): the best trial's lr rerun at seed 1
(name=check_optuna_<optimizer>) and the grid's best lr level (tiny_loss.csv) rerun at seed 0 (cosmos_tiny_<optimizer>);
the grid's two-seed mean is tiny_loss.csv's, made at the commit tiny_loss.md names.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
from pathlib import Path

from experiments.numeric import named_runs, provenance
from experiments.tables import Run, Table, load_runs

HERE = Path(__file__).resolve().parent
METRIC = "table/best_val_loss"


def started(run: Run) -> tuple[str, str]:
    """Sort key: the run's first start in run.json, then the first line of its run.log (Hydra's ms timestamp)."""
    first = json.loads((run.path / "run.json").read_text())["history"][0]["time"]
    log = run.path / "run.log"
    return first, (log.read_text().split("\n", 1)[0] if log.exists() else "")


def trials(runs_dir: Path, optimizer: str) -> list[Run]:
    """The finished trials of cosmos_optuna_<optimizer>, in start order."""
    return sorted(named_runs(runs_dir, [f"cosmos_optuna_{optimizer}"]), key=started)


def grid_best(grid_csv: Path, row: str) -> tuple[str, float, float]:
    """(best lr level, mean, std) of ``row``'s Markov best loss in the grid's table (tiny_loss.csv)."""
    for line in csv.DictReader(grid_csv.open()):
        if line["table"] == "tiny_loss" and line["row"] == row and line["column"] == "Markov best loss":
            level = dict(p.split("=", 1) for p in line["setting"].split(","))["lr_level"]
            return level, float(line["mean"]), float(line["std"])
    raise ValueError(f"{grid_csv} has no Markov best loss for {row}")


def one_run(runs: list[Run], where: str) -> Run | None:
    if len(runs) > 1:
        raise ValueError(f"{len(runs)} finished runs for {where}: {[str(r.path) for r in runs]}")
    return runs[0] if runs else None


def fmt(v: float | None) -> str:
    return "not run" if v is None else f"{v:.4f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=Path, default=Path("logs"))
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--grid", type=Path, default=HERE / "results" / "tiny_loss.csv", help="the grid's table")
    args = ap.parse_args(argv)
    labels = {spec["method"]: row for row, spec in Table.load(HERE / "tiny_optuna.yaml").rows.items()}
    found = {r.name.removeprefix("cosmos_optuna_") for r in load_runs(args.runs) if r.name.startswith("cosmos_optuna_")}
    optimizers = [o for o in labels if o in found]
    grid_md = args.grid.with_suffix(".md")
    grid_commit = next((line.split()[1] for line in grid_md.read_text().splitlines() if line.startswith("Commit:")),
                       "unknown") if grid_md.exists() else "unknown"

    lines = provenance("CPU analog, lr by Optuna: every trial, and the best one against the grid",
                       "python -m experiments.cosmos.optuna_trials " + " ".join(sys.argv[1:] if argv is None else argv))
    lines += ["Each trial: one run at seed 0, 300 steps, Markov source; best val loss = table/best_val_loss. "
              "Trials in the order they started (the first `n_startup_trials` are TPE's random ones); bold = best.", ""]
    best = {}
    for opt in optimizers:
        runs = trials(args.runs, opt)
        best[opt] = min(runs, key=lambda r: r.results[METRIC])
        lines += [f"## {labels[opt]}: {len(runs)} trials (`{args.runs}/cosmos_optuna_{opt}/`)", "",
                  "| # | started | lr | best val loss | folder |", "|---|---|---|---|---|"]
        for i, r in enumerate(runs, 1):
            loss = fmt(r.results[METRIC])
            lines.append(f"| {i} | {started(r)[0]} | {r.get('method.lr'):.3e} | "
                         f"{f'**{loss}**' if r is best[opt] else loss} | `{r.path.name}` |")
        lines.append("")

    lines += ["## Against the grid", "",
              f"Optuna: its best trial (seed 0) and that lr rerun at seed 1 (`name=check_optuna_<optimizer>`). Grid: "
              f"its best lr level by the two-seed mean of `{args.grid.name}` (made at {grid_commit[:7]}), rerun at "
              f"seed 0 here (`experiment=cosmos_tiny/<optimizer> lr_level=<level> seed=0`); its seed 1 is not rerun, "
              "its mean is the table's.", "",
              "| row | lr | seed 0 | seed 1 | mean ± std of 2 seeds |", "|---|---|---|---|---|"]
    for opt in optimizers:
        level, grid_mean, grid_std = grid_best(args.grid, labels[opt])
        grid0 = one_run([r for r in named_runs(args.runs, [f"cosmos_tiny_{opt}"])
                         if str(r.seed) == "0" and r.get("lr_level") == level and r.get("data") == "markov_v32"],
                        f"cosmos_tiny_{opt} lr_level={level} seed=0")
        lr = best[opt].get("method.lr")
        check = one_run([r for r in named_runs(args.runs, [f"check_optuna_{opt}"])
                         if str(r.seed) == "1" and math.isclose(r.get("method.lr"), lr, rel_tol=1e-9)],
                        f"check_optuna_{opt} at lr {lr} seed 1")
        grid_lr = grid0.get("method.lr") if grid0 else None
        lines.append(f"| {labels[opt]}, grid ({level}) | {f'{grid_lr:.3g}' if grid_lr else level} | "
                     f"{fmt(grid0.results[METRIC] if grid0 else None)} | | {grid_mean:.4f} ± {grid_std:.4f} "
                     f"({grid_commit[:7]}) |")
        seeds = [best[opt].results[METRIC]] + ([check.results[METRIC]] if check else [])
        mean = f"{statistics.fmean(seeds):.4f} ± {statistics.stdev(seeds):.4f}" if len(seeds) == 2 else "not run"
        lines.append(f"| {labels[opt]}, Optuna | {lr:.3g} | {fmt(seeds[0])} | "
                     f"{fmt(check.results[METRIC] if check else None)} | {mean} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tiny_optuna_trials.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
