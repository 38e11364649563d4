"""GEAR CPU analog §5.1-A (../shared/papers/gear.md): matrix-level error of each compression scheme.

    python -m experiments.gear.matrix_error [--checkpoint logs/gear_recall_train/default] [--out experiments/gear/results]

For each scheme at 2 bits (per-token groups, KIVI, KIVI + sparse, GEAR-L, GEAR), the relative
Frobenius error ‖X − X̂‖/‖X‖ of keys and values and the relative error of the attention output
softmax(q K̂ᵀ/√d) V̂ against the exact one, on
  (1) structured synthetic KV: K = U Vᵀ + noise with 3 outlier channels (x10) and isolated spikes,
      V = low rank + Gaussian; B=2, H=4, n=512, d_H=64; random Gaussian queries;
  (2) real KV captured from the tiny recall model trained here (conf/experiment/gear_recall_train.yaml),
      as trained (alpha = 1) and after the function-preserving channel rescaling of §5.1-B
      (alpha = 10 on 2 RoPE channel pairs per KV head): the first 64 prompt tokens of 16 test
      sequences, queried by the model's own queries at the answer positions.
g = 64 tokens / channels, s = 2 %, r = 4, 3 power-iteration rounds, packed fp16 storage.
The expected ordering (§5.1-A) is GEAR < {GEAR-L, KIVI+sparse} < KIVI < per-token.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import torch

from experiments.gear.provenance import header
from methods.gear.compress import CodecSpec, QuantSpec, compress

SCHEMES = {  # name -> (codec, rank)
    "per-token 2-bit (g=64)": (CodecSpec(QuantSpec(2, "token", 64), QuantSpec(2, "token", 64)), 0),
    "KIVI-2 (g=64)": (CodecSpec(QuantSpec(2, "channel", 64), QuantSpec(2, "token", 64)), 0),
    "KIVI-2 + sparse (s=2%)": (CodecSpec(QuantSpec(2, "channel", 64), QuantSpec(2, "token", 64), outlier_frac=0.02), 0),
    "GEAR-L (r=4)": (CodecSpec(QuantSpec(2, "channel", 64), QuantSpec(2, "token", 64)), 4),
    "GEAR (s=2%, r=4)": (CodecSpec(QuantSpec(2, "channel", 64), QuantSpec(2, "token", 64), outlier_frac=0.02), 4),
}


def synthetic_kv(seed: int = 0, B=2, H=4, n=512, d=64):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(B, H, n, 8, generator=g) @ torch.randn(B, H, 8, d, generator=g) + 0.5 * torch.randn(B, H, n, d, generator=g)
    k[..., torch.randperm(d, generator=g)[:3]] *= 10
    k += (torch.rand(B, H, n, d, generator=g) < 0.001) * 30 * torch.randn(B, H, n, d, generator=g)
    v = 0.5 * torch.randn(B, H, n, 4, generator=g) @ torch.randn(B, H, 4, d, generator=g) + torch.randn(B, H, n, d, generator=g)
    q = torch.randn(B, H, 16, d, generator=g)
    return [(k, v, q)]


@torch.no_grad()
def real_kv(checkpoint: str, alpha: float, n: int = 64, sequences: int = 16):
    """Per layer (K [S,H,n,d], V, Q [S,Hq,answer,d]) of the trained recall model on unseen test sequences."""
    from transformers import DynamicCache
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    from reprolab.models.config import CausalLM
    from runners.generate.model import build_model
    from runners.generate.rescale import rescale_channels
    from runners.generate.tasks.config import Recall

    from omegaconf import OmegaConf

    run_cfg = OmegaConf.load(Path(checkpoint) / "config.yaml")
    model_cfg = CausalLM(**{k: v for k, v in OmegaConf.to_container(run_cfg.model).items() if not k.startswith("_")})
    model = build_model(model_cfg, checkpoint, None, "float32", "cpu")
    if alpha != 1.0:
        rescale_channels(model, alpha, 2, seed=0)
    task = Recall(num_keys=run_cfg.data.num_keys, num_values=run_cfg.data.num_values, num_pairs=run_cfg.data.num_pairs,
                  num_examples=sequences).task
    seqs = task.sample(sequences, torch.Generator().manual_seed(98765))
    queries = {}

    def grab(i):
        def hook(mod, args, out):
            queries[i] = out
        return hook

    hooks = [layer.self_attn.q_proj.register_forward_hook(grab(i)) for i, layer in enumerate(model.model.layers)]
    cache = DynamicCache(config=model.config)
    pos = torch.arange(seqs.shape[1])[None]
    model(seqs, cache=cache, use_cache=True, position_ids=pos)
    for h in hooks:
        h.remove()
    cos, sin = model.model.rotary_emb(seqs.float(), pos)
    out = []
    for i, layer in enumerate(cache.layers):
        d = layer.keys.shape[-1]
        q = queries[i].view(sequences, seqs.shape[1], -1, d).transpose(1, 2)
        q, _ = apply_rotary_pos_emb(q, q, cos, sin)
        out.append((layer.keys[:, :, :n], layer.values[:, :, :n], q[:, :, task.prompt_len :]))
    return out


def errors(kvq, codec, rank):
    k, v, q = kvq
    p0 = torch.rand(k.shape[-1], rank, generator=torch.Generator().manual_seed(0)) if rank else None
    kh = compress(k, "key", codec, rank, p0).materialize().float()
    vh = compress(v, "value", codec, rank, p0).materialize().float()
    rep = q.shape[1] // k.shape[1]
    attn = lambda kk, vv: torch.softmax(q @ kk.repeat_interleave(rep, 1).transpose(-1, -2) / k.shape[-1] ** 0.5, -1) @ vv.repeat_interleave(rep, 1)  # noqa: E731
    exact = attn(k, v)
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()  # noqa: E731
    return rel(kh, k), rel(vh, v), rel(attn(kh, vh), exact)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default="logs/gear_recall_train/default", help="run folder of gear_recall_train")
    ap.add_argument("--out", default="experiments/gear/results")
    args = ap.parse_args(argv)
    sources = {"synthetic": synthetic_kv()}
    if (Path(args.checkpoint) / "checkpoints" / "last.ckpt").exists():
        sources["recall model"] = real_kv(args.checkpoint, 1.0)
        sources["recall model, alpha=10"] = real_kv(args.checkpoint, 10.0)
    rows = []
    for source, layers in sources.items():
        for name, (codec, rank) in SCHEMES.items():
            errs = torch.tensor([errors(kvq, codec, rank) for kvq in layers]).mean(0).tolist()
            rows.append({"source": source, "scheme": name, "key_err": errs[0], "value_err": errs[1], "attn_err": errs[2]})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "matrix_error.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = ["# GEAR §5.1-A: matrix-level relative error at 2 bits", "", header(
        "python -m experiments.gear.matrix_error " + " ".join(argv or [f"--checkpoint {args.checkpoint}"])), "",
        "Relative Frobenius error of K and V and relative error of the attention output (mean over layers for the "
        "recall model). Lower is better; the best scheme per column and source is **bold**.", ""]
    for source in sources:
        sub = [r for r in rows if r["source"] == source]
        best = {c: min(r[c] for r in sub) for c in ("key_err", "value_err", "attn_err")}
        lines += [f"## {source}", "", "| scheme | key error | value error | attention-output error |", "|---|---|---|---|"]
        for r in sub:
            cells = [f"**{r[c]:.4f}**" if r[c] == best[c] else f"{r[c]:.4f}" for c in ("key_err", "value_err", "attn_err")]
            lines.append(f"| {r['scheme']} | " + " | ".join(cells) + " |")
        lines.append("")
    (out / "matrix_error.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
