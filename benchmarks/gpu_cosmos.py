"""GPU benchmark for COSMOS: Triton kernels vs their PyTorch twins, and a full LLaMA training step.

    python -m benchmarks.gpu_cosmos                 # one H100/H200: about 5 minutes
    python -m benchmarks.gpu_cosmos --device cpu --tiny   # the CPU smoke test of the same code (twins only)

Part 1, per kernel (reprolab/kernels/cosmos), at LLaMA-1B shapes, and Newton-Schulz on 32 LLaMA-60M
matrices batched vs one call each: median ms of the Triton kernel and of the twin, their ratio,
and the max abs difference; then the QR of COSMOS's power iteration against CholeskyQR2 (`bench_qr`,
an alternative measured to decide on). Part 2, per optimizer (AdamW, Muon, SOAP f=10, COSMOS r=64; Muon and
COSMOS also with every kernel on Triton / on the twins) and model (LLaMA-60M, LLaMA-130M, conf/model): ms per training step (forward,
backward, optimizer; bf16 autocast, fp32 weights and state), the optimizer step alone, peak
memory (`torch.cuda.max_memory_allocated`) and the optimizer-state bytes. Random tokens: the
timings do not depend on the data. Writes benchmarks/results/gpu_cosmos.{md,json} (not with --tiny).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from benchmarks.common import command_line, profile_once, write
from reprolab.params import optimizer_state_bytes

MODELS = {"llama_60m": dict(hidden_size=512, intermediate_size=1376, num_layers=8, num_heads=8),
          "llama_130m": dict(hidden_size=768, intermediate_size=2048, num_layers=12, num_heads=12),
          "llama_350m": dict(hidden_size=1024, intermediate_size=2736, num_layers=24, num_heads=16)}
# issue 20's GPU targets: COSMOS's optimizer step against SOAP's and Muon's, its training step against AdamW's
TARGETS = {("optimizer_ms", "SOAP"): 0.9, ("optimizer_ms", "Muon"): 1.3, ("ms_per_step", "AdamW"): 1.3}
TINY_MODEL = dict(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4)


class Timer:
    """Median wall time of a callable, synchronising CUDA around it."""

    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def __call__(self, fn, reps: int, warmup: int = 2) -> float:
        for _ in range(warmup):
            fn()
        samples = []
        for _ in range(reps):
            if self.cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if self.cuda:
                torch.cuda.synchronize()
            samples.append(time.perf_counter() - t0)
        return 1000 * statistics.median(samples)


def kernel_cases(device: str, tiny: bool) -> dict:
    """name -> (twin-or-triton callable factory taking a backend) at LLaMA-1B down_proj-like shapes."""
    from reprolab.kernels.cosmos import gemm_epilogue, newton_schulz5, project_moments

    m, n, r = (48, 40, 8) if tiny else (2048, 5461, 64)
    g = torch.Generator(device="cpu").manual_seed(0)

    def rnd(*shape, dtype=torch.float32):
        return torch.randn(*shape, generator=g).to(device=device, dtype=dtype)

    G, M, Zc = rnd(m, n), rnd(m, n), rnd(n, r)
    U = torch.linalg.qr(rnd(n, r)).Q
    V = rnd(m, r).abs()
    P = G @ U
    X = rnd(m, n, dtype=torch.bfloat16)
    k, s = (3, 16) if tiny else (32, 512)  # LLaMA-60M's q, k, v, o projections: 32 matrices of 512 x 512
    Xs = rnd(k, s, s, dtype=torch.bfloat16)
    pm = dict(beta1=0.95, beta2=0.95, g_coef=1.0, m_coef=0.95, mix_scale=0.1, bias2=0.5, eps=1e-8)
    return {
        "power iteration Z = (1-b2) G^T P + b2 U S": lambda be: gemm_epilogue(G.T, P, alpha=0.05, c=Zc, beta=0.95,
                                                                              backend=be),
        "projection + moments (M, V, GU, GhatU, D)": lambda be: project_moments(G, M.clone(), U, V.clone(), backend=be,
                                                                                **pm)[2],
        "residual R = Ghat - (Ghat U) U^T": lambda be: gemm_epilogue(P, U.T, alpha=-1.0, c=G, beta=0.1, d=M, delta=0.095,
                                                                      backend=be),
        "NS5 bf16 (cosmos association)": lambda be: newton_schulz5(X, 5, "cosmos", torch.bfloat16, backend=be),
        "NS5 bf16 (muon association)": lambda be: newton_schulz5(X, 5, "muon", torch.bfloat16, backend=be),
        f"NS5 bf16 (muon), {k} matrices {s} x {s}, one batched call": lambda be: newton_schulz5(
            Xs, 5, "muon", torch.bfloat16, backend=be),
        f"NS5 bf16 (muon), {k} matrices {s} x {s}, one call each": lambda be: torch.stack(
            [newton_schulz5(x, 5, "muon", torch.bfloat16, backend=be) for x in Xs]),
    }


def bench_kernels(device: str, tiny: bool, reps: int) -> list[dict]:
    timer = Timer(device)
    rows = []
    backends = ("triton", "torch") if device.startswith("cuda") else ("torch",)
    for name, fn in kernel_cases(device, tiny).items():
        out = {be: fn(be) for be in backends}
        row = {"kernel": name, **{f"{be}_ms": timer(lambda: fn(be), reps) for be in backends}}
        if len(backends) == 2:
            row["speedup"] = row["torch_ms"] / row["triton_ms"]
            row["max_abs_diff"] = (out["triton"].float() - out["torch"].float()).abs().max().item()
        rows.append(row)
        print(row, flush=True)
    return rows


# Orthonormalisation of COSMOS's power-iteration output Z (k, n, r) in the batches a LLaMA-130M step
# forms (48 attention matrices and 12 + 12 gate/up projections with n = 768, 12 down projections with
# n = 2048; r = 64): Householder QR (the official code's; 56% of COSMOS's GPU time in the first
# profile, 3 device-to-host copies per matrix there) against `methods.linalg.cholesky_qr2` with its
# orthonormality check (what COSMOS's qr="auto" runs on CUDA; not measured before this table). The
# same Q in exact arithmetic up to column signs (COSMOS's update does not depend on them); Z's
# singular values span 1 to 1e-3.
QR_BATCHES = ((48, 768), (12, 768), (12, 2048))


def bench_qr(device: str, tiny: bool, reps: int) -> list[dict]:
    from methods.linalg import cholesky_qr2

    timer = Timer(device)
    g = torch.Generator(device="cpu").manual_seed(1)
    rows = []
    for k, n in ((3, 40),) if tiny else QR_BATCHES:
        r = 8 if tiny else 64
        left = torch.linalg.qr(torch.randn(k, n, r, generator=g)).Q
        right = torch.linalg.qr(torch.randn(k, r, r, generator=g)).Q
        Z = (left * torch.logspace(0, -3, r) @ right).to(device)  # (k, n, r), cond 1e3
        house, chol = torch.linalg.qr(Z).Q, cholesky_qr2(Z)
        signs = torch.sign((house * chol).sum(-2, keepdim=True))
        eye = torch.eye(r, device=device)
        rows.append({"k": k, "n": n, "r": r, "householder_ms": timer(lambda: torch.linalg.qr(Z).Q, reps),
                     "cholesky_qr2_ms": timer(lambda: cholesky_qr2(Z), reps),
                     "householder_orth_err": (house.mT @ house - eye).abs().max().item(),
                     "cholesky_qr2_orth_err": (chol.mT @ chol - eye).abs().max().item(),
                     "max_abs_diff": (house - chol * signs).abs().max().item()})
        print(rows[-1], flush=True)
    return rows


# Rows of the training table: name -> (optimizer, options). backend None is the default (auto:
# Triton Newton-Schulz, cuBLAS for the rest); "triton" puts every kernel on Triton, "torch" none.
OPTIMIZERS = {"AdamW": ("AdamW", {}), "Muon": ("Muon", {}), "Muon (twin NS)": ("Muon", {"backend": "torch"}),
              "SOAP": ("SOAP", {}), "COSMOS": ("COSMOS", {}), "COSMOS (all Triton)": ("COSMOS", {"backend": "triton"}),
              "COSMOS (all twins)": ("COSMOS", {"backend": "torch"}),
              "COSMOS (Householder QR)": ("COSMOS", {"qr": "householder"}),
              # Newton-Schulz in the complement of the basis (the CPU default where it pays; on CUDA
              # it needs the Householder QR, geqrf per matrix there): whether ns_space auto should take it
              "COSMOS (complement NS)": ("COSMOS", {"ns_space": "complement"})}


def make_optimizer(row: str, model):
    from reprolab.params import decay_groups, matrix_branch_groups

    name, options = OPTIMIZERS[row]
    if name == "AdamW":
        return torch.optim.AdamW(decay_groups(model, 0.0), lr=1e-3, betas=(0.9, 0.95))
    if name == "Muon":
        from methods.muon import Muon

        return Muon(matrix_branch_groups(model, "use_muon", {}, {"lr": 1e-3}), lr=0.02, **options)
    if name == "SOAP":
        from methods.soap import SOAP

        return SOAP(decay_groups(model, 0.0), lr=3e-3, precondition_frequency=10)
    from methods.cosmos import COSMOS

    groups = matrix_branch_groups(model, "use_cosmos", {}, {})
    return COSMOS(groups, lr=2e-3, rank=min([64] + [min(p.shape) for p in groups[0]["params"]]), **options)


PROFILED = ("Muon", "SOAP", "COSMOS", "COSMOS (Householder QR)")  # one step of each profiled on the largest model


def profile_step(opt, backward, device: str) -> dict:
    """One optimizer step under torch.profiler: kernel launches, host and device time, top ops."""
    backward()
    return profile_once(opt.step, device.startswith("cuda"))


def bench_training(device: str, tiny: bool, steps: int, batch: int, seq: int, models=None, optimizers=None):
    """Yields one row per (model, optimizer): ``models`` (names in MODELS) and ``optimizers`` (rows of
    OPTIMIZERS) default to all."""
    from reprolab.models.config import CausalLM

    models = {"tiny": TINY_MODEL} if tiny else {name: MODELS[name] for name in (models or MODELS)}
    vocab = 256 if tiny else 32000
    for model_name, sizes in models.items():
        for opt_name, (_, options) in OPTIMIZERS.items():
            if optimizers and opt_name not in optimizers:
                continue
            if options.get("backend") == "triton" and not device.startswith("cuda"):
                continue  # compiled Triton needs a GPU (the CPU smoke test runs the twins)
            torch.manual_seed(0)
            model = CausalLM(**sizes, vocab_size=vocab).build().to(device)
            opt = make_optimizer(opt_name, model)
            tokens = torch.randint(0, vocab, (batch, seq + 1), device=device)
            x, y = tokens[:, :-1], tokens[:, 1:]
            opt_ms = []

            def backward():
                with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=not tiny):
                    logits = model(input_ids=x).logits
                torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), y.flatten()).backward()

            def train_step():
                backward()
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                opt.step()
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                opt_ms.append(1000 * (time.perf_counter() - t0))
                opt.zero_grad(set_to_none=True)

            for _ in range(11 if opt_name == "SOAP" else 2):  # first steps: SVD / eigh set-up, Triton compiles
                train_step()
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            opt_ms.clear()
            step_ms = Timer(device)(train_step, steps, warmup=0)
            state = optimizer_state_bytes(opt)
            row = {"model": model_name, "optimizer": opt_name, "ms_per_step": step_ms,
                   "optimizer_ms": statistics.median(opt_ms), "state_bytes": state,
                   "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None}
            if opt_name in PROFILED and model_name == list(models)[-1]:
                row["profile"] = profile_step(opt, backward, device)
                opt.zero_grad(set_to_none=True)
            print({k: v for k, v in row.items() if k != "profile"}, flush=True)
            del model, opt
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            yield row


def markdown(kernels: list[dict], qr: list[dict], training: list[dict], batch: int, seq: int) -> str:
    lines = ["# COSMOS on GPU: Triton kernels vs PyTorch twins, and full LLaMA training steps", "",
             "## Kernels (LLaMA-1B down_proj shapes: m 2048, n 5461, r 64; then 32 LLaMA-60M attention matrices), "
             "median ms", "",
             "| kernel | Triton ms | twin ms | twin / Triton | max abs diff |", "|---|---|---|---|---|"]
    for k in kernels:
        lines.append(f"| {k['kernel']} | {k.get('triton_ms', float('nan')):.3f} | {k['torch_ms']:.3f} | "
                     f"{k.get('speedup', float('nan')):.2f} | {k.get('max_abs_diff', float('nan')):.2e} |")
    lines += ["", "## Orthonormalising the power iteration's Z (k, n, r): Householder QR vs CholeskyQR2 in fp64 "
              "(COSMOS's qr=auto on CUDA), median ms", "",
              "| k x n x r | Householder ms | CholeskyQR2 ms | Householder / CholeskyQR2 | max abs(Q^T Q - I) "
              "Householder | CholeskyQR2 | max abs diff |", "|---|---|---|---|---|---|---|"]
    for q in qr:
        lines.append(f"| {q['k']} x {q['n']} x {q['r']} | {q['householder_ms']:.3f} | {q['cholesky_qr2_ms']:.3f} | "
                     f"{q['householder_ms'] / q['cholesky_qr2_ms']:.2f} | {q['householder_orth_err']:.1e} | "
                     f"{q['cholesky_qr2_orth_err']:.1e} | {q['max_abs_diff']:.1e} |")
    lines += ["", f"## Training step, batch {batch} x {seq} tokens, bf16 autocast, fp32 weights and state", "",
              "| model | optimizer | ms/step | optimizer ms | peak GB | state bytes |", "|---|---|---|---|---|---|"]
    for t in training:
        peak = "n/a" if t["peak_gb"] is None else f"{t['peak_gb']:.2f}"
        lines.append(f"| {t['model']} | {t['optimizer']} | {t['ms_per_step']:.1f} | {t['optimizer_ms']:.1f} | {peak} | "
                     f"{t['state_bytes']:,} |")
    for model in dict.fromkeys(t["model"] for t in training):
        by = {t["optimizer"]: t for t in training if t["model"] == model}
        if "COSMOS" not in by:
            continue
        for (key, other), target in TARGETS.items():
            if other in by:
                ratio = by["COSMOS"][key] / by[other][key]
                what = "optimizer step" if key == "optimizer_ms" else "training step"
                lines.append(f"- {model}: COSMOS {what} / {other}'s = {ratio:.2f} (target <= {target}: "
                             f"{'met' if ratio <= target else '**missed**'})")
    for t in training:
        if "profile" in t:
            prof = t["profile"]
            lines += ["", f"## Profile of one {t['optimizer']} step ({t['model']}): {prof['gpu_ops']} GPU operations "
                      f"(kernels, copies), {prof['device_ms']:.1f} ms of GPU time", "", "```", prof["table"].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny shapes (a smoke test; nothing is written)")
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {list(MODELS)}")
    p.add_argument("--optimizers", help=f"comma-separated rows of the training table (default all: {list(OPTIMIZERS)})")
    args = p.parse_args(argv)
    if unknown := sorted(set(args.models.split(",")) - set(MODELS)) + sorted(
            set((args.optimizers or "AdamW").split(",")) - set(OPTIMIZERS)):
        p.error(f"unknown --models/--optimizers {unknown}; models: {list(MODELS)}, optimizers: {list(OPTIMIZERS)}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("benchmarks.gpu_cosmos: no CUDA device here, skipped (run it on one H100/H200).")
        return None
    if args.tiny:
        args.reps, args.steps, args.batch, args.seq = 2, 2, 2, 16
    kernels = bench_kernels(args.device, args.tiny, args.reps)
    qr = bench_qr(args.device, args.tiny, args.reps)
    training = []
    for row in bench_training(args.device, args.tiny, args.steps, args.batch, args.seq, args.models.split(","),
                              args.optimizers.split(",") if args.optimizers else None):
        training.append(row)
        if not args.tiny:  # written after every row: a run stopped at its time limit keeps what it measured
            md = markdown(kernels, qr, training, args.batch, args.seq)
            path = write("gpu_cosmos", {"kernels": kernels, "qr": qr, "training": training}, md,
                         command=command_line("benchmarks.gpu_cosmos", argv))
    if not args.tiny:
        print(f"written: {path}")
    return kernels, qr, training


if __name__ == "__main__":
    main()
