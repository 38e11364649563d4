#!/usr/bin/env bash
# The DFT CPU toy with the spec prototype's MLP base (../shared/papers/dft.md §5.1): the base
# (experiment=dft_toy_mlp_base, seed 0: model=mlp_window, d 256), then SFT, DFT and DFT2 from it at the large lr
# (experiment=dft_toy_mlp: AdamW 1e-3, 32 prompts a step, 96 steps) and the small lr (experiment=dft_toy_mlp_small_lr:
# 5e-5, 64 a step, 320 steps) x 3 seeds = 18 runs; the negatives are sampled once from the base and cached
# (logs/cache/dft_negatives_mlp). Then, into experiments/dft/results/: toy_mlp.md / .csv / .png (the table
# experiments/dft/toy_mlp.yaml), toy_mlp_base.md (the base and its negatives), toy_mlp_curves.md (every validation
# step) and toy_mlp_paired.md (SFT against DFT / DFT2 prompt by prompt, exact sign tests). About 15 min on one core.
#   experiments/dft/run_toy_mlp.sh [extra Hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
export REPROLAB_JOBS="${REPROLAB_JOBS:-1}"
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"
QUIET=(logger=csv trainer.enable_progress_bar=false cpu_threads=1 "paths.log_dir=$LOGS")

"$PY" run.py experiment=dft_toy_mlp_base seed=0 "${QUIET[@]}"
BASE="$LOGS/dft_toy_mlp_base/seed=0"
"$PY" run.py experiment=dft_toy_mlp "runner.init_from='$BASE'" seed=0 "${QUIET[@]}" trainer.max_steps=1 \
    name=dft_toy_mlp_prepare >/dev/null  # caches the negatives once, before the parallel runs
COMMON=("runner.init_from='$BASE'" objective=sft,dft,dft2 seed=0,1,2 launcher=joblib "${QUIET[@]}")
"$PY" run.py -m experiment=dft_toy_mlp_small_lr "${COMMON[@]}" "$@"
"$PY" run.py -m experiment=dft_toy_mlp "${COMMON[@]}" "$@"

"$PY" -m experiments.report dft --runs "$LOGS" --out "$LOGS/reports/dft" --no-wandb > /dev/null
mkdir -p experiments/dft/results
cp "$LOGS"/reports/dft/toy_mlp.md "$LOGS"/reports/dft/toy_mlp.csv "$LOGS"/reports/dft/toy_mlp.png experiments/dft/results/
"$PY" -m experiments.dft.toy_base --runs "$LOGS" --experiment dft_toy_mlp_base --cache dft_negatives_mlp > /dev/null
"$PY" -m experiments.dft.toy_curves --runs "$LOGS" --mlp > /dev/null
"$PY" -m experiments.dft.toy_paired --runs "$LOGS" --experiments dft_toy_mlp_small_lr dft_toy_mlp \
    --name toy_mlp_paired.md > /dev/null
