#!/usr/bin/env bash
# The DFT CPU toy (../shared/papers/dft.md §5.1): the base model (experiment=dft_toy_base, seed 0), then SFT,
# DFT and DFT2 from it at the large lr (experiment=dft_toy: AdamW 1e-3, 32 prompts a step, 96 steps) and the
# small lr (experiment=dft_toy_small_lr: 5e-5, 64 a step, 320 steps: the spec's budget) x 3 seeds = 18 runs; the
# negatives are sampled once from the base and cached (logs/cache/dft_negatives); then the paper's tables
# (experiments/dft/*.yaml; uf and math are paper scale: "not run") into experiments/dft/results/, with
# toy_base.md (the base and its negatives) and toy_curves.md (every validation step).
#   experiments/dft/run_toy.sh [extra Hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
export REPROLAB_JOBS="${REPROLAB_JOBS:-2}"
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"

"$PY" run.py experiment=dft_toy_base seed=0 logger=csv trainer.enable_progress_bar=false cpu_threads=1 "paths.log_dir=$LOGS"
BASE="$LOGS/dft_toy_base/seed=0"
COMMON=("runner.init_from='$BASE'" objective=sft,dft,dft2 seed=0,1,2 launcher=joblib logger=csv
        trainer.enable_progress_bar=false "paths.log_dir=$LOGS" cpu_threads=1)
"$PY" run.py experiment=dft_toy "runner.init_from='$BASE'" seed=0 logger=csv trainer.enable_progress_bar=false \
    "paths.log_dir=$LOGS" trainer.max_steps=1 name=dft_toy_prepare cpu_threads=1 >/dev/null  # caches the negatives once, before the parallel runs
"$PY" run.py -m experiment=dft_toy "${COMMON[@]}" "$@"
"$PY" run.py -m experiment=dft_toy_small_lr "${COMMON[@]}" "$@"

"$PY" -m experiments.report dft --runs "$LOGS" --out "$LOGS/reports/dft" --no-wandb > /dev/null
mkdir -p experiments/dft/results
cp "$LOGS"/reports/dft/*.md "$LOGS"/reports/dft/*.csv "$LOGS"/reports/dft/toy.png experiments/dft/results/
"$PY" -m experiments.dft.toy_base --runs "$LOGS" > /dev/null
"$PY" -m experiments.dft.toy_curves --runs "$LOGS" > /dev/null
