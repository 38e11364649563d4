"""The paper's Figs. 1-3 from our runs (arXiv:2410.09640): loss per iteration, GD vs AltGD, GD vs NAG,
and measured loss against the linearised bound.

    python run.py -m experiment=nag_mf_curves && python run.py -m experiment=nag_mf_theory
    python -m experiments.nag_mf.figures [--logs logs] [--out experiments/nag_mf/results]

Fig. 3's bound (spec §2.4): f_t <= 1/2 ||A||^2 (1 - mu0/L0)^(2t) for GD and 1/2 ||A||^2 (1 - sqrt(mu0/L0))^(2t)
for NAG, with L0/mu0 the run's table/L0_over_mu0 and f_0 = 1/2 ||A||^2 (Y0 = 0).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.numeric import metrics, named_runs  # noqa: E402

HERE = Path(__file__).resolve().parent
COLORS = {5: "tab:red", 20: "tab:blue", 80: "tab:green"}
STYLE = {"gd": "-", "altgd": "--", "nag": "--"}


def _curve(ax, run, label, style):
    m = metrics(run)
    ax.semilogy(m["step"], m["train/loss"], style, color=COLORS.get(run.get("problem.d")), label=label, lw=1.4)


def pair_figure(runs, pair: tuple[str, str], title: str, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, problem in zip(axes, ("matrix_factorization", "linear_net")):
        for run in sorted(runs, key=lambda r: (r.get("problem.d"), r.get("method.algorithm"))):
            if run.get("problem") != problem or run.get("method.algorithm") not in pair:
                continue
            a = run.get("method.algorithm")
            _curve(ax, run, f"{a.upper()} d={run.get('problem.d')}", STYLE[a] if a != pair[0] else "-")
        ax.set(title=f"{problem.replace('_', ' ')} (kappa=10)", xlabel="iteration", ylabel="loss f(X, Y)")
        ax.legend(fontsize=8, ncol=2)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def theory_figure(runs, path: Path) -> None:
    kappas = sorted({r.get("problem.kappa") for r in runs})
    fig, axes = plt.subplots(1, len(kappas), figsize=(5.5 * len(kappas), 4), squeeze=False)
    for ax, kappa in zip(axes[0], kappas):
        for run in sorted(runs, key=lambda r: (r.get("problem.d"), r.get("method.algorithm"))):
            if run.get("problem.kappa") != kappa:
                continue
            a, d = run.get("method.algorithm"), run.get("problem.d")
            m = metrics(run)
            t, f0 = m["step"].to_numpy(), float(m["train/loss"].iloc[0])
            q = 1.0 / run.results["table/L0_over_mu0"]
            rate = 1 - q if a == "gd" else 1 - math.sqrt(q)
            ax.semilogy(t, m["train/loss"], STYLE[a], color=COLORS[d], lw=1.4, label=f"{a.upper()} d={d}")
            ax.semilogy(t, f0 * np.power(rate, 2 * t), ":", color=COLORS[d], lw=1.0)
        ax.set(title=f"kappa={kappa:g} (dotted: linearised bound)", xlabel="iteration", ylabel="loss", ylim=(1e-16, 10))
        ax.legend(fontsize=8, ncol=2)
    fig.suptitle("Fig. 3 analog: theory vs experiment, matrix factorisation, c = 100")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--logs", default="logs")
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    curves = named_runs(args.logs, ["nag_mf_curves"])
    if curves:
        pair_figure(curves, ("gd", "altgd"), "Fig. 1 analog: GD (solid) vs AltGD (dashed)", out / "fig1_gd_vs_altgd.png")
        pair_figure(curves, ("gd", "nag"), "Fig. 2 analog: GD (solid) vs NAG (dashed)", out / "fig2_gd_vs_nag.png")
    theory = named_runs(args.logs, ["nag_mf_theory"])
    if theory:
        theory_figure(theory, out / "fig3_theory_vs_experiment.png")
    print(f"figures in {out}")


if __name__ == "__main__":
    main()
