#!/usr/bin/env bash
# APS CPU analog C (../shared/papers/adaptive_pref.md §5.1 C) as Hydra multiruns: BT and APS
# (tau0 0.1, K 3; rho0 0.3 and 0.1 at tau_max 3) x 3 seeds = 9 runs of a tabular reward, + 3 with the closed-form tau at rho0 0.3 (800 full-batch
# steps over 60k stochastic pairs); then the table (experiments/adaptive_pref/tabular.yaml) into
# experiments/adaptive_pref/results/.
#   experiments/adaptive_pref/run_tabular.sh [extra Hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
export REPROLAB_JOBS="${REPROLAB_JOBS:-2}"
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"
COMMON=(experiment=adaptive_pref_tabular seed=0,1,2 launcher=joblib logger=csv trainer.enable_progress_bar=false "paths.log_dir=$LOGS")

"$PY" run.py -m objective=bt "${COMMON[@]}" "$@"
"$PY" run.py -m objective=adaptive_pref objective.tau_max=3.0 objective.rho0=0.3,0.1 "${COMMON[@]}" "$@"
# the exact tau (closed form) where K = 3 Newton steps do not converge (rho0 = 0.3: see tau_mechanics.md)
"$PY" run.py -m objective=adaptive_pref objective.tau_max=3.0 objective.rho0=0.3 objective.solver=closed_form "${COMMON[@]}" "$@"

"$PY" -m experiments.report adaptive_pref --runs "$LOGS" --out "$LOGS/reports/adaptive_pref" --no-wandb > /dev/null
mkdir -p experiments/adaptive_pref/results
cp "$LOGS"/reports/adaptive_pref/tabular.* experiments/adaptive_pref/results/
