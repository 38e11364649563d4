"""APS CPU analog A (../shared/papers/adaptive_pref.md §5.1 A): the tau solvers on a grid of margins.

For rho0 in {0.05, 0.1, 0.3, 0.5} and tau_max in {1, 3, 5} (tau0 = 0.1), K-step projected Newton from
tau = 1 (K = 3, 5, 20; the official guards, eps = 1e-8) against the exact closed form
clip(|d| / u(rho0), tau0, tau_max) on d in [-8, 8]: the largest error, the share of margins off by
more than 1e-3, and the share still jumping between the bounds after K steps (the oscillation of
spec §2.3). A figure shows tau(d) and the gradient weight 1 - sigmoid(d / tau) next to BT's.

    python -m experiments.adaptive_pref.tau_mechanics [--out experiments/adaptive_pref/results]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from experiments.numeric import provenance
from methods.adaptive_pref.tau import closed_form_tau, newton_tau, u_of_rho

RHOS = (0.05, 0.1, 0.3, 0.5)
TAU_MAXES = (1.0, 3.0, 5.0)
STEPS = (3, 5, 20)
TAU0 = 0.1


def rows(d: torch.Tensor) -> list[dict]:
    out = []
    for rho0 in RHOS:
        for tau_max in TAU_MAXES:
            exact = closed_form_tau(d, TAU0, tau_max, rho0)
            row = {"rho0": rho0, "tau_max": tau_max, "u": u_of_rho(rho0)}
            for k in STEPS:
                tau = newton_tau(d, TAU0, tau_max, rho0, k, 1e-8)
                nxt = newton_tau(d, TAU0, tau_max, rho0, k + 1, 1e-8)
                err = (tau - exact).abs()
                bouncing = ((tau == TAU0) & (nxt == tau_max)) | ((tau == tau_max) & (nxt == TAU0))
                row[k] = (err.max().item(), (err > 1e-3).double().mean().item(), bouncing.double().mean().item())
            out.append(row)
    return out


def figure(d: torch.Tensor, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for rho0, tau_max in ((0.1, 1.0), (0.1, 3.0), (0.5, 3.0)):
        tau = closed_form_tau(d, TAU0, tau_max, rho0)
        a.plot(d, tau, label=f"rho0={rho0}, tau_max={tau_max}")
        b.plot(d, 1 - torch.sigmoid(d / tau), label=f"APS rho0={rho0}, tau_max={tau_max}")
    b.plot(d, 1 - torch.sigmoid(d), "k--", label="BT")
    a.set(xlabel="margin d", ylabel="tau*(d) (closed form)")
    b.set(xlabel="margin d", ylabel="gradient weight 1 - sigmoid(d / tau)")
    a.legend(), b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="experiments/adaptive_pref/results")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    d = torch.linspace(-8, 8, 3201, dtype=torch.float64)
    lines = provenance("APS CPU analog A: K-step Newton vs the closed-form tau (float64)",
                       "python -m experiments.adaptive_pref.tau_mechanics " + " ".join(sys.argv[1:] if argv is None else argv))
    lines += ["3201 margins d evenly spaced in [-8, 8], tau0 = 0.1, Newton from tau = 1 with the robotics guards "
              "(log(2s + 1e-8), f'' >= 1e-8). Each K cell: max |tau - tau*| / share of margins off by > 1e-3 / "
              "share still jumping between the bounds (tau0 <-> tau_max) at step K+1.", ""]
    head = "| rho0 | tau_max | u(rho0) | " + " | ".join(f"K = {k}" for k in STEPS) + " |"
    lines += [head, "|" + "---|" * (3 + len(STEPS))]
    for r in rows(d):
        cells = " | ".join(f"{e:.1e} / {f:.3f} / {o:.3f}" for e, f, o in (r[k] for k in STEPS))
        lines.append(f"| {r['rho0']} | {r['tau_max']:g} | {r['u']:.4f} | {cells} |")
    figure(d, out / "tau_mechanics.png")
    lines += ["", "Figure: tau_mechanics.png (closed-form tau*(d) and the gradient weight next to BT's)."]
    (out / "tau_mechanics.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
