"""The DFT toy's SFT-vs-DFT comparison with the held-out noise paired out: each finished run's final weights
score the 256 held-out prompts one by one (greedy exact match), and for each seed the prompts DFT (or DFT2)
gets right that SFT misses (b) and those SFT gets right that DFT misses (c) are counted, with the exact
two-sided sign test on b against c (McNemar's exact test); then over the seeds, per prompt, the number of
seeds right under each objective (a prompt is one unit; the seeds share the prompts, so their b and c are
not independent and are not summed). Runs: experiment=dft_toy_small_lr and dft_toy_near_base (``--experiments``:
others, e.g. the MLP base's dft_toy_mlp_small_lr). Writes ``toy_paired.md`` (``--name``: another file).

    python -m experiments.dft.toy_paired [--runs logs] [--out experiments/dft/results]
    python -m experiments.dft.toy_paired --experiments dft_toy_mlp_small_lr dft_toy_mlp --name toy_mlp_paired.md
"""
from __future__ import annotations

import argparse
import json
import sys
from math import comb
from pathlib import Path

import torch
from omegaconf import OmegaConf

from experiments.numeric import provenance

EXPERIMENTS = ("dft_toy_small_lr", "dft_toy_near_base")
OBJECTIVES = ("sft", "dft", "dft2")


def sign_test(b: int, c: int) -> float:
    """Exact two-sided sign test of b successes against c under p = 1/2 (ties dropped beforehand)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def discordant(ours: torch.Tensor, sft: torch.Tensor) -> tuple[int, int]:
    """(prompts ``ours`` gets right and ``sft`` misses, the reverse) of two 0/1 per-prompt vectors."""
    ours, sft = ours.bool(), sft.bool()
    return int((ours & ~sft).sum()), int((sft & ~ours).sum())


def per_prompt(run: Path) -> torch.Tensor:
    """0/1 greedy exact match of the run's final weights on each held-out prompt, in the validation order."""
    from methods.dft.data_config import DFTToyData
    from methods.dft.objective import greedy_exact_match
    from reprolab.models.config import CausalLM
    from runners.generate.model import load_weights

    cfg = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=True)
    data = DFTToyData()
    assert (cfg["data"].get("n_train", 256), cfg["data"].get("split_seed", 0)) == (data.n_train, data.split_seed), run
    model = CausalLM(**cfg["model"]).build(9)
    load_weights(model, str(run), "--runs")
    model.eval()
    with torch.no_grad():
        return torch.cat([greedy_exact_match(model, b["pos_input_ids"], b["pos_labels"], b["pos_attention_mask"])
                          for b in data.build(0).val_batches()])


def finished_runs(runs: Path, experiment: str) -> dict:
    """{(lr, base run): {objective: {seed: run folder}}} of the finished runs of ``experiment`` with the spec's
    m = 2 (runs of other bases are compared apart)."""
    out: dict = {}
    for meta_file in sorted((runs / experiment).glob("*/run.json")):
        meta = json.loads(meta_file.read_text())
        cfg = OmegaConf.load(meta_file.parent / "config.yaml")
        if meta.get("status") != "complete" or cfg.data.negatives_per_step != 2:
            continue
        cell = out.setdefault((float(cfg.optimizer.lr), str(cfg.runner.init_from)), {})
        seeds = cell.setdefault(meta["choices"]["objective"], {})
        if int(cfg.seed) in seeds:
            raise ValueError(f"two finished runs of one cell: {seeds[int(cfg.seed)]} and {meta_file.parent}")
        seeds[int(cfg.seed)] = meta_file.parent
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="logs")
    ap.add_argument("--out", default="experiments/dft/results")
    ap.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    ap.add_argument("--name", default="toy_paired.md")
    args = ap.parse_args(argv)
    lines = provenance("DFT toy: SFT against DFT / DFT2 prompt by prompt (held-out, greedy exact match)",
                       "python -m experiments.dft.toy_paired " + " ".join(sys.argv[1:] if argv is None else argv))
    lines += ["b = held-out prompts the row's objective gets right and SFT misses, c = the reverse (256 prompts); "
              "p = exact two-sided sign test of b against c. Per seed: the two runs share the base, the negatives "
              "and the batch order. Over seeds: per prompt, the number of seeds (of 3) right; b / c = prompts "
              "where the row's count is higher / lower than SFT's.", ""]
    for experiment in args.experiments:
        for (lr, base), by_objective in sorted(finished_runs(Path(args.runs), experiment).items()):
            em = {o: {s: per_prompt(r) for s, r in runs.items()} for o, runs in by_objective.items()}
            if "sft" not in em:
                continue
            lines += [f"## experiment={experiment}, lr {lr:g}, base {base}", "",
                      "| row | seed | acc (row) | acc (SFT) | b | c | p |", "|---|---|---|---|---|---|---|"]
            for o in OBJECTIVES[1:]:
                seeds = sorted(set(em.get(o, {})) & set(em["sft"]))
                for s in seeds:
                    b, c = discordant(em[o][s], em["sft"][s])
                    lines.append(f"| {o} | {s} | {em[o][s].mean():.3f} | {em['sft'][s].mean():.3f} | {b} | {c} | "
                                 f"{sign_test(b, c):.3f} |")
                if len(seeds) > 1:
                    ours, sft = (torch.stack([em[k][s] for s in seeds]).sum(0) for k in (o, "sft"))
                    b, c = int((ours > sft).sum()), int((ours < sft).sum())
                    lines.append(f"| {o} | all {len(seeds)} (per prompt) | {ours.mean() / len(seeds):.3f} | "
                                 f"{sft.mean() / len(seeds):.3f} | {b} | {c} | {sign_test(b, c):.3f} |")
            lines.append("")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / args.name).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
