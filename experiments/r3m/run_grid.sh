#!/usr/bin/env bash
# The R3M CPU grid (../shared/papers/r3m.md §5.1) as one Hydra multirun: 6 corruption settings
# (clean; irrational p = 1/3, 1/2, 2/3; random 20 %; stochastic T = 0.3) x 7 methods (BT; R3M
# lambda = 0.3, 0.5, 0.7; BT with label smoothing 0.1; rDPO-style eps = 0.1 on the reward margin; APS at
# its defaults, adaptive_pref spec §5.1 D) x 3 seeds = 126 runs of an MLP reward model (1280 steps each);
# then the tables (experiments/r3m/grid_*.yaml) into experiments/r3m/results/.
#   experiments/r3m/run_grid.sh [extra Hydra overrides]
# One torch thread per run, REPROLAB_JOBS (default 2) runs at a time.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
export REPROLAB_JOBS="${REPROLAB_JOBS:-2}"
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"
GRID="experiment=r3m_grid/clean,r3m_grid/irrational_p13,r3m_grid/irrational_p12,r3m_grid/irrational_p23,r3m_grid/random_20,r3m_grid/stochastic_t03"
# The methods (conf/r3m_grid_method/: an objective and its settings each, the rows of experiments/r3m/grid_*.yaml).
METHODS="bt,label_smoothing,r3m_lam03,r3m_lam05,r3m_lam07,rdpo,aps"
# paper=null: no table rebuild at the end of the sweep; the one report below makes them.
COMMON=(seed=0,1,2 launcher=joblib logger=csv trainer.enable_progress_bar=false paper=null "paths.log_dir=$LOGS")

# One multirun (one process pool, one import of torch and Lightning per worker): corruption x method x seed.
"$PY" run.py -m "$GRID" "+r3m_grid_method=$METHODS" "${COMMON[@]}" "$@"

"$PY" -m experiments.report r3m --runs "$LOGS" --out "$LOGS/reports/r3m" --no-wandb > /dev/null
mkdir -p experiments/r3m/results
cp "$LOGS"/reports/r3m/grid_* experiments/r3m/results/
"$PY" -m experiments.r3m.compare_prototype > /dev/null
