"""R3M-DPO's outliers in the language analog: is delta > 0 concentrated on the flipped training pairs?

For every finished ``r3m_lang`` run with ``objective=r3m_dpo``: the per-pair delta of its final
checkpoint (the objective state, each pair's delta at its one visit: the stream never repeats a pair)
against the pairs' recorded ``flipped`` (the data source regenerated from the run's config and seed).
Writes ``lang_outliers.md``: per training flip rate, mean ± std over seeds of the flagged share,
precision (share of flagged pairs that were flipped; compare with the flip rate) and recall.

    python -m experiments.r3m.lang_outliers [--runs logs] [--out experiments/r3m/results]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf

from experiments.numeric import named_runs, provenance


def outliers(run) -> dict:
    from reprolab.data.config import PreferenceMarkovData

    cfg = OmegaConf.to_container(OmegaConf.load(run.path / "config.yaml"), resolve=True)
    data = PreferenceMarkovData(**cfg["data"])
    ckpt = torch.load(run.path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    delta = ckpt["objective"]["delta"]
    flipped = torch.zeros(delta.numel(), dtype=torch.bool)
    seen = torch.zeros(delta.numel(), dtype=torch.bool)
    stream = data.build(cfg["seed"]).train_batches(0, 0, 1)
    while not seen.all():
        batch = next(stream)
        ids = batch["pair_id"]
        flipped[ids], seen[ids] = batch["flipped"], True
    flagged = delta > 0
    tp = int((flagged & flipped).sum())
    return {"flip": data.flip, "flagged share": flagged.double().mean().item(),
            "precision": tp / int(flagged.sum()) if flagged.any() else float("nan"),
            "recall": tp / int(flipped.sum()) if flipped.any() else float("nan"),
            "flipped share": flipped.double().mean().item()}


def cell(values: list[float]) -> str:
    """mean ± std over seeds; n/a when a seed has no value (no pair flagged, or none flipped)."""
    if any(math.isnan(v) for v in values):
        return "n/a"
    return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="logs")
    ap.add_argument("--out", default="experiments/r3m/results")
    args = ap.parse_args(argv)
    runs = [r for r in named_runs(args.runs, ["r3m_lang"]) if r.choices.get("objective") == "r3m_dpo"]
    by_flip: dict[float, list[dict]] = {}
    for run in runs:
        o = outliers(run)
        by_flip.setdefault(o["flip"], []).append(o)
    lines = provenance("R3M-DPO outliers in the language analog (delta > 0 vs the flipped training pairs)",
                       "python -m experiments.r3m.lang_outliers " + " ".join(sys.argv[1:] if argv is None else argv))
    keys = ("flipped share", "flagged share", "precision", "recall")
    lines += ["R3M-DPO (lambda = 0.75, beta = 0.1): a pair is flagged when beta h < log(1/lambda - 1) = -1.10 at its "
              "one training visit. Mean ± std over seeds (n).", "",
              "| training flip rate | " + " | ".join(keys) + " | n |", "|---|" + "---|" * (len(keys) + 1)]
    for flip in sorted(by_flip):
        rs = by_flip[flip]
        lines.append(f"| {flip:g} | " + " | ".join(cell([r[k] for r in rs]) for k in keys) + f" | {len(rs)} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lang_outliers.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
