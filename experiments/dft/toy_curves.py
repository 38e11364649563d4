"""The DFT toy's validation curves: held-out exact match, the margin log pi(y*) - log pi(d) and its two terms at
every validation step of the toy runs (experiment=dft_toy and dft_toy_small_lr), mean ± std over seeds, per
objective (and per other override of a run, e.g. a sensitivity run with data.negatives_per_step=4, kept apart).
Writes ``toy_curves.md``.

    python -m experiments.dft.toy_curves [--runs logs] [--out experiments/dft/results] [--near-base]

``--near-base``: experiment=dft_toy_near_base instead, into ``toy_curves_near_base.md``; ``--mlp``: the MLP base's
runs (experiment=dft_toy_mlp and dft_toy_mlp_small_lr), into ``toy_mlp_curves.md``.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

from experiments.numeric import provenance

EXPERIMENTS = {"dft_toy": "large lr (AdamW 1e-3, 32 prompts x 96 steps)",
               "dft_toy_small_lr": "small lr (AdamW 5e-5, 64 prompts x 320 steps)"}
NEAR_BASE = {"dft_toy_near_base": "near the base (AdamW 1e-5 / 1.5e-5 / 2e-5, 64 prompts x 320 steps)"}
MLP = {"dft_toy_mlp": "MLP base, large lr (AdamW 1e-3, 32 prompts x 96 steps)",
       "dft_toy_mlp_small_lr": "MLP base, small lr (AdamW 5e-5, 64 prompts x 320 steps)"}
OBJECTIVES = ("sft", "dft", "dft2")
METRICS = (("val/exact_match", "exact match", "{:.3f}"), ("val/margin", "margin", "{:.2f}"),
           ("val/logp_chosen", "log pi(y*)", "{:.2f}"), ("val/logp_distractor", "log pi(d)", "{:.2f}"))


# the bases of run_toy.sh and run_toy_mlp.sh: not named in the rows
BASES = ("runner.init_from='logs/dft_toy_base/seed=0'", "runner.init_from='logs/dft_toy_mlp_base/seed=0'")


def row_name(meta: dict) -> str:
    """The run's objective, with its overrides beyond the objective, the seed and run_toy.sh's base."""
    extra = [p for p in meta.get("key", "").split(",") if p and p not in BASES and not p.startswith(("seed=", "objective="))]
    return meta["choices"]["objective"] + (f" [{', '.join(extra)}]" if extra else "")


def read_curves(runs: Path, experiment: str) -> dict:
    """{row (`row_name`): {step: {metric: [one value per seed]}}} of the finished runs of ``experiment``."""
    out: dict = {}
    for meta_file in sorted((runs / experiment).glob("*/run.json")):
        meta = json.loads(meta_file.read_text())
        if meta.get("status") != "complete":
            continue
        name = row_name(meta)
        with open(meta_file.parent / "metrics.csv") as f:
            for row in csv.DictReader(f):
                if row.get("val/exact_match"):
                    at = out.setdefault(name, {}).setdefault(int(row["step"]) + 1, {})
                    for key, _, _ in METRICS:
                        at.setdefault(key, []).append(float(row[key]))
    return out


def _cell(values: list[float], fmt: str) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(statistics.fmean(values))} ± {fmt.format(std)} (n={len(values)})"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="logs")
    ap.add_argument("--out", default="experiments/dft/results")
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--near-base", action="store_true")
    which.add_argument("--mlp", action="store_true")
    args = ap.parse_args(argv)
    experiments = NEAR_BASE if args.near_base else MLP if args.mlp else EXPERIMENTS
    lines = provenance("DFT toy: validation curves (held-out prompts, mean ± std over seeds)",
                       "python -m experiments.dft.toy_curves " + " ".join(sys.argv[1:] if argv is None else argv))
    for experiment, title in experiments.items():
        curves = read_curves(Path(args.runs), experiment)
        lines += [f"## experiment={experiment}: {title}", "",
                  "| run | step | " + " | ".join(name for _, name, _ in METRICS) + " |",
                  "|---|---|" + "---|" * len(METRICS)]
        rows = [o for o in OBJECTIVES if o in curves] + sorted(r for r in curves if r not in OBJECTIVES)
        for row in rows:
            for step, at in sorted(curves[row].items()):
                lines.append(f"| {row} | {step} | " + " | ".join(_cell(at[k], fmt) for k, _, fmt in METRICS) + " |")
        lines.append("")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "toy_curves_near_base.md" if args.near_base else "toy_mlp_curves.md" if args.mlp else "toy_curves.md"
    (out / name).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
