#!/usr/bin/env bash
# The R3M language analog (issue 15 item 5c): an SFT tiny LLaMA (experiment=r3m_lang_sft, seed 0), then
# DPO, cDPO (label smoothing 0.1), rDPO (eps 0.1) and R3M-DPO (lambda 0.75) from it at training flip
# rates 0, 0.1, 0.2 x 3 seeds = 36 runs (experiment=r3m_lang); then the table
# (experiments/r3m/lang.yaml) into experiments/r3m/results/.
#   experiments/r3m/run_lang.sh [extra Hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
export REPROLAB_JOBS="${REPROLAB_JOBS:-2}"
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"

"$PY" run.py experiment=r3m_lang_sft seed=0 logger=csv trainer.enable_progress_bar=false cpu_threads=1 "paths.log_dir=$LOGS"
SFT="$LOGS/r3m_lang_sft/seed=0"
COMMON=(experiment=r3m_lang "runner.init_from='$SFT'" data.flip=0.0,0.1,0.2 seed=0,1,2 launcher=joblib logger=csv
        trainer.enable_progress_bar=false "paths.log_dir=$LOGS")
"$PY" run.py -m objective=dpo objective.label_smoothing=0.0,0.1 "${COMMON[@]}" "$@"
"$PY" run.py -m objective=rdpo objective.flip_rate=0.1 "${COMMON[@]}" "$@"
"$PY" run.py -m objective=r3m_dpo "${COMMON[@]}" "$@"

"$PY" -m experiments.report r3m --runs "$LOGS" --out "$LOGS/reports/r3m" --no-wandb > /dev/null
mkdir -p experiments/r3m/results
cp "$LOGS"/reports/r3m/lang.* experiments/r3m/results/
"$PY" -m experiments.r3m.lang_outliers --runs "$LOGS" > /dev/null
