#!/usr/bin/env bash
# The DFT toy near the base (experiment=dft_toy_near_base: AdamW 1e-5, 1.5e-5, 2e-5, 64 prompts x 320 steps;
# SFT / DFT / DFT2 x 3 seeds), from the base of experiments/dft/run_toy.sh (trained here if missing), then
# the tables (experiments/dft/toy_near_base.yaml) into experiments/dft/results/toy_near_base.md / .csv.
#   experiments/dft/run_toy_near_base.sh [extra Hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
export REPROLAB_JOBS="${REPROLAB_JOBS:-2}"
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"
BASE="$LOGS/dft_toy_base/seed=0"

[ -d "$BASE" ] || "$PY" run.py experiment=dft_toy_base seed=0 logger=csv trainer.enable_progress_bar=false cpu_threads=1 "paths.log_dir=$LOGS"
"$PY" run.py experiment=dft_toy_near_base "runner.init_from='$BASE'" seed=0 logger=csv trainer.enable_progress_bar=false \
    "paths.log_dir=$LOGS" trainer.max_steps=1 name=dft_toy_prepare cpu_threads=1 >/dev/null  # caches the negatives once, before the parallel runs
# lr first: Hydra varies the last override fastest, so the runs go lr by lr, the smallest first
"$PY" run.py -m experiment=dft_toy_near_base optimizer.lr=1.0e-5,1.5e-5,2.0e-5 "runner.init_from='$BASE'" \
    objective=sft,dft,dft2 seed=0,1,2 launcher=joblib logger=csv trainer.enable_progress_bar=false "paths.log_dir=$LOGS" \
    cpu_threads=1 "$@"

"$PY" -m experiments.report dft --runs "$LOGS" --out "$LOGS/reports/dft" --no-wandb > /dev/null
mkdir -p experiments/dft/results
cp "$LOGS"/reports/dft/toy_near_base.md "$LOGS"/reports/dft/toy_near_base.csv experiments/dft/results/
