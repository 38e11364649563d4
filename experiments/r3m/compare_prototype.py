"""Ours (the grid tables' CSVs) beside the spec's prototype numbers (experiments/r3m/reference/prototype.yaml).

    python -m experiments.r3m.compare_prototype [--results experiments/r3m/results]

Writes ``prototype_comparison.md`` in the results folder: per corruption and method, ours (mean ± std,
n seeds) / the prototype's mean / the difference, for the metrics the spec reports.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import yaml

from experiments.numeric import provenance

HERE = Path(__file__).resolve().parent
METRICS = ("Pearson", "clean acc", "precision", "recall", "AUROC(-d)")


def ours(results: Path) -> dict:
    """{(table, row, column): (mean, std, n)} from the grid CSVs (the main table of each, not the
    labelled tables of runs with other settings)."""
    out = {}
    for path in sorted(results.glob("grid_*.csv")):
        with path.open() as f:
            for r in csv.DictReader(f):
                if r["setting"] or not r["n"] or int(r["n"]) == 0:
                    continue
                out[(r["table"], r["row"], r["column"])] = (float(r["mean"]), float(r["std"] or 0), int(r["n"]))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    results = Path(args.results)
    proto = yaml.safe_load((HERE / "reference" / "prototype.yaml").read_text())
    have = ours(results)
    lines = provenance("R3M CPU grid: ours beside the spec's prototype",
                       "python -m experiments.r3m.compare_prototype " + " ".join(sys.argv[1:] if argv is None else argv))
    lines += [f"Prototype: {proto['source']} (a researcher's throw-away prototype, not the paper). Cells: ours "
              "mean ± std (n seeds) / prototype / ours - prototype; blank where either side has no number.", ""]
    for table, rows in proto["values"].items():
        lines += [f"## {table}", "", "| method | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        for row, vals in rows.items():
            cells = []
            for m in METRICS:
                mine, theirs = have.get((table, row, m)), vals.get(m)
                if mine is None or theirs is None:
                    cells.append("")
                    continue
                cells.append(f"{mine[0]:.3f} ± {mine[1]:.3f} ({mine[2]}) / {theirs:.3f} / {mine[0] - theirs:+.3f}")
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    (results / "prototype_comparison.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
