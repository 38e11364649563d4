#!/usr/bin/env bash
# TempNet + DRO on the Markov teacher with the spec's §5 schedule (1500 steps; TempNet in its own constant-lr group at
# 1e-3), rho 4 and 1, 3 seeds; then the tau / teacher-entropy analysis into experiments/tempnet/results/tau_entropy_1500.md.
#   experiments/tempnet/run_markov_long.sh [extra Hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs_long}"
for rho in 4 1; do
  "$PY" run.py -m experiment=tempnet_markov objective=dro_lm objective.rho=$rho temperature=tempnet temperature.hidden=32 \
    temperature.tau_min=0.05 temperature.tau_max=5 temperature.lr=1e-3 trainer.max_steps=1500 \
    trainer.val_check_interval=1500 seed=0,1,2 logger=csv trainer.enable_progress_bar=false "paths.log_dir=$LOGS" \
    cpu_threads=1 "$@"
done
"$PY" -m experiments.tempnet.tau_entropy --runs "$LOGS" --out experiments/tempnet/results/tau_entropy_1500.md > /dev/null
