#!/usr/bin/env bash
# APS CPU analog B (../shared/papers/adaptive_pref.md §5.1 B) as Hydra multiruns: BT and APS
# (tau0 = 0.1, K = 3 Newton steps; rho0 = 0.1 with tau_max 1 and 3, rho0 = 0.5 with tau_max 3) x 3 seeds
# = 12 runs of an MLP reward model (640 steps of 2016 pairs); then the tables
# (experiments/adaptive_pref/{strength,policy}.yaml) into experiments/adaptive_pref/results/.
#   experiments/adaptive_pref/run_strength.sh [extra Hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
export REPROLAB_JOBS="${REPROLAB_JOBS:-2}"
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"
COMMON=(experiment=adaptive_pref_strength seed=0,1,2 launcher=joblib logger=csv trainer.enable_progress_bar=false "paths.log_dir=$LOGS")

"$PY" run.py -m objective=bt "${COMMON[@]}" "$@"
"$PY" run.py -m objective=adaptive_pref objective.rho0=0.1 objective.tau_max=1.0,3.0 "${COMMON[@]}" "$@"
"$PY" run.py -m objective=adaptive_pref objective.rho0=0.5 objective.tau_max=3.0 "${COMMON[@]}" "$@"

"$PY" -m experiments.report adaptive_pref --runs "$LOGS" --out "$LOGS/reports/adaptive_pref" --no-wandb > /dev/null
mkdir -p experiments/adaptive_pref/results
cp "$LOGS"/reports/adaptive_pref/{strength,policy}.* experiments/adaptive_pref/results/
