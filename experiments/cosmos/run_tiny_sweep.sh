#!/usr/bin/env bash
# The CPU analog of the COSMOS comparison (../shared/papers/cosmos.md §5.1) as Hydra multiruns:
# 6 optimizers x 3 learning rates x 2 seeds x 2 datasets = 72 runs of a tiny LLaMA (300 steps);
# then one more lr (x2 beyond the edge) for the four optimizers whose best Markov lr sat at an edge
# of their grid in that sweep (8 runs: it confirmed the edge values as the optima); then the two
# tables (experiments/cosmos/tiny_{loss,cost}.yaml) into experiments/cosmos/results/.
#   experiments/cosmos/run_tiny_sweep.sh [extra Hydra overrides]
# One torch thread per run and REPROLAB_JOBS (default 2) runs at a time: on 2 cores, two threads
# per run oversubscribe them (measured 15x slower on this shared machine).
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
export REPROLAB_JOBS="${REPROLAB_JOBS:-2}"
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"

"$PY" run.py -m \
  experiment=cosmos_tiny/adamw,cosmos_tiny/adam_mini,cosmos_tiny/galore,cosmos_tiny/muon,cosmos_tiny/soap,cosmos_tiny/cosmos \
  data=markov_v32,tinyshakespeare lr_level=lo,mid,hi seed=0,1 \
  launcher=joblib logger=csv trainer.enable_progress_bar=false "$@"
# The edge extension. choice(x) keeps one value a sweep dimension, applied per job (lr_level is
# defined by the experiment, which is itself swept).
"$PY" run.py -m experiment=cosmos_tiny/muon,cosmos_tiny/cosmos data=markov_v32 "lr_level=choice(hi2)" seed=0,1 \
  launcher=joblib logger=csv trainer.enable_progress_bar=false "$@"
"$PY" run.py -m experiment=cosmos_tiny/adamw,cosmos_tiny/adam_mini data=markov_v32 "lr_level=choice(lo2)" seed=0,1 \
  launcher=joblib logger=csv trainer.enable_progress_bar=false "$@"

"$PY" -m experiments.report cosmos --runs "$LOGS" --out "$LOGS/reports/cosmos" --no-wandb > /dev/null
mkdir -p experiments/cosmos/results
cp "$LOGS"/reports/cosmos/tiny_* experiments/cosmos/results/
cat experiments/cosmos/results/tiny_loss.md experiments/cosmos/results/tiny_cost.md
