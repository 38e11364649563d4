"""Does the predicted tau follow the teacher's entropy? (TempNet CPU analog, ../shared/papers/tempnet.md §5.)

    python -m experiments.tempnet.tau_entropy --runs logs [--out experiments/tempnet/results/tau_entropy.md]

For every finished run of the Markov analog (``tempnet_markov*``) with a temperature, the model is rebuilt
from its folder (config.yaml + checkpoints/last.ckpt) and run on the data's validation set; tau is
averaged per context token (order 1: the input token is the context) over contexts seen >= 5 times, and
its Spearman rank correlation with the teacher's per-context entropy is reported, with the mean
entropy of softmax(h / tau) against log K - rho (the entropy the DRO dual drives it to, spec §2.1:
d/dtau of the dual = H(softmax(h/tau)) - (log K - rho), whatever the label).
"""
from __future__ import annotations

import argparse
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from experiments.numeric import provenance
from experiments.tables import load_runs


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the ranks (no ties in continuous values)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def rebuild(run):
    """(model in eval mode with its temperature, data source) of a finished lm run."""
    from reprolab.models.assemble import attach_temperature
    from reprolab.registry import register_schemas
    from runners.generate.model import load_state

    schemas = register_schemas()
    cfg = run.config
    data = schemas[("data", run.choices["data"])](**OmegaConf.to_container(cfg.data))
    source = data.build(int(cfg.seed))
    model = schemas[("model", "causal_lm")](**OmegaConf.to_container(cfg.model)).build(source.vocab_size)
    temperature = schemas[("temperature", run.choices["temperature"])](**OmegaConf.to_container(cfg.temperature))
    attach_temperature(model, temperature)
    model.load_state_dict(load_state(str(run.path)))
    return model.eval(), source


@torch.no_grad()
def measure(run) -> dict:
    from methods.dro_lm import tempered_forward

    model, source = rebuild(run)
    taus, ents, counts = defaultdict(float), [], defaultdict(int)
    for batch in source.val_batches():
        logits, tau = tempered_forward(model, batch)
        p = torch.softmax(logits.float(), -1)
        ents.append(-(p * torch.log_softmax(logits.float(), -1)).sum(-1).flatten())
        for c, t in zip(batch["input_ids"].flatten().tolist(), tau.flatten().tolist()):
            taus[c] += t
            counts[c] += 1
    ctx = sorted(c for c in counts if counts[c] >= 5)
    mean_tau = np.array([taus[c] / counts[c] for c in ctx])
    teacher = source.chain.context_entropy[ctx]
    rho = OmegaConf.select(run.config, "objective.rho", default=None)
    return {"spearman": spearman(mean_tau, teacher) if mean_tau.std() > 0 else float("nan"),
            "tau_lo": float(mean_tau.min()), "tau_hi": float(mean_tau.max()), "contexts": len(ctx),
            "entropy": float(torch.cat(ents).mean()), "target": math.log(source.vocab_size) - rho if rho is not None else None}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="logs")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "tau_entropy.md"))
    args = ap.parse_args(argv)
    runs = [r for r in load_runs(Path(args.runs)) if r.name.startswith("tempnet_markov") and r.choices.get("temperature")]
    rows, by_setting = [], defaultdict(list)
    for run in sorted(runs, key=lambda r: (r.name, r.setting, str(r.seed))):
        m = measure(run)
        by_setting[(run.name, run.setting)].append(m["spearman"])
        target = "" if m["target"] is None else f"{m['target']:.3f}"
        rows.append(f"| {run.name} | {run.setting} | {run.seed} | {m['spearman']:+.3f} | {m['tau_lo']:.3f} - {m['tau_hi']:.3f} "
                    f"| {m['contexts']} | {m['entropy']:.3f} | {target} |")
    lines = provenance("TempNet CPU analog: predicted tau against the teacher's per-context entropy",
                       f"python -m experiments.tempnet.tau_entropy --runs {args.runs}")
    lines += ["Spearman rank correlation between the mean predicted tau of a context (validation set, contexts seen >= 5",
              "times) and the teacher's entropy of that context; H(tempered) = mean entropy of softmax(h/tau) over the",
              "validation tokens; log K - rho = the entropy the DRO dual drives it to.", "",
              "| run | setting | seed | Spearman(tau, H_teacher) | tau range over contexts | contexts | H(tempered) | log K - rho |",
              "|---|---|---|---|---|---|---|---|", *rows, "", "Mean over seeds:", ""]
    for (name, setting), vals in by_setting.items():
        v = np.array(vals)
        lines.append(f"- {name} `{setting}`: Spearman {v.mean():+.3f} ± {v.std(ddof=1) if len(v) > 1 else 0:.3f} (n = {len(v)})")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
