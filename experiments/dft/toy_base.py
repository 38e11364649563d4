"""The DFT toy's starting point: the base model's held-out exact match and margin, and what its cached
negatives are (the share equal to the right answer y*, to the distractor d, other), with the generation's
tokens/s. Writes ``toy_base.md``.

    python -m experiments.dft.toy_base [--runs logs] [--out experiments/dft/results]
    python -m experiments.dft.toy_base --experiment dft_toy_mlp_base --cache dft_negatives_mlp   # toy_mlp_base.md
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import torch
from omegaconf import OmegaConf

from experiments.numeric import provenance


def base_metrics(run: Path) -> dict:
    from methods.dft.data_config import DFTToyData
    from methods.dft.objective import positives_metrics
    from reprolab.models.config import CausalLM
    from runners.generate.model import load_weights

    cfg = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=True)
    model = CausalLM(**cfg["model"]).build(9)  # the run's model config
    load_weights(model, str(run), "--runs")
    model.eval()
    sums: dict = {}
    with torch.no_grad():
        for batch in DFTToyData().build(0).val_batches():
            for k, (s, c) in positives_metrics(model, batch).items():
                acc = sums.setdefault(k, [0.0, 0.0])
                acc[0], acc[1] = acc[0] + float(s), acc[1] + float(c)
    return {k: s / c for k, (s, c) in sums.items()}


def negatives_stats(cache: Path) -> list[dict]:
    from methods.dft.data import TOY_PROMPTS, toy_correct, toy_distractor, toy_split
    from methods.dft.negatives import read

    out = []
    for f in sorted(cache.glob("negatives-*.pt")):
        negs = read(f)
        train, _ = toy_split(256, 0)
        kinds = Counter()
        for i, per_prompt in zip(train, negs.answers):
            p = TOY_PROMPTS[i]
            for a in per_prompt:
                kinds["y*" if a == toy_correct(*p) else "d" if a == toy_distractor(*p) else "other"] += 1
        total = sum(kinds.values())
        s = negs.manifest["sampling"]
        out.append({"file": f.name, "per_prompt": len(negs.answers[0]), "T": s["temperature"], "top_k": s["top_k"],
                    **{k: kinds[k] / total for k in ("y*", "d", "other")},
                    "tokens_per_s": negs.tokens_per_s, "mean_ref_logp": negs.ref_logps.mean().item()})
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="logs")
    ap.add_argument("--out", default="experiments/dft/results")
    ap.add_argument("--seed", type=int, default=0, help="the base run's seed (another than 0: toy_base_seed<N>.md)")
    ap.add_argument("--experiment", default="dft_toy_base",
                    help="the base's experiment (another: <its name without dft_>.md, e.g. toy_mlp_base.md)")
    ap.add_argument("--cache", default="dft_negatives", help="the negatives' folder under <runs>/cache")
    args = ap.parse_args(argv)
    m = base_metrics(Path(args.runs) / args.experiment / f"seed={args.seed}")
    lines = provenance("DFT toy: the base model and its cached negatives",
                       "python -m experiments.dft.toy_base " + " ".join(sys.argv[1:] if argv is None else argv))
    lines += [f"Base model (experiment={args.experiment}, seed {args.seed}) on the 256 held-out prompts:", "",
              "| exact match | margin log pi(y*) - log pi(d) | log pi(y*) | log pi(d) |", "|---|---|---|---|",
              f"| {m['exact_match']:.3f} | {m['margin']:.2f} | {m['logp_chosen']:.2f} | {m['logp_distractor']:.2f} |", "",
              "Cached negatives of the 256 training prompts (share of all negatives):", "",
              "| file | per prompt | T | top-k | = y* | = d | other | generation tokens/s | mean log pi_ref |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in negatives_stats(Path(args.runs) / "cache" / args.cache):
        lines.append(f"| {r['file'][:22]}... | {r['per_prompt']} | {r['T']} | {r['top_k']} | {r['y*']:.3f} | {r['d']:.3f} | "
                     f"{r['other']:.3f} | {r['tokens_per_s']:.0f} | {r['mean_ref_logp']:.2f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "toy_base" if args.experiment == "dft_toy_base" else args.experiment.removeprefix("dft_")
    (out / (f"{stem}.md" if args.seed == 0 else f"{stem}_seed{args.seed}.md")).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
