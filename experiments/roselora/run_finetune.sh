#!/usr/bin/env bash
# RoseLoRA CPU analog §5.2 (../shared/papers/roselora.md), fine-tuning: the fact-world LM of
# experiment=roselora_facts_pretrain (the editing analog's base, 100 % fact accuracy) fine-tuned on 200 new facts at
# once, T = 1000 steps, with RoseLoRA (rho = 0.1, 0.3; t_i = 0.1 T, density at T - 0.2 T) and LoRA, 3 seeds each; then
# the table experiments/roselora/facts_finetune.yaml into experiments/roselora/results/.
#   experiments/roselora/run_finetune.sh [extra Hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"
COMMON=(seed=0,1,2 logger=csv paper=null "paths.log_dir=$LOGS")

"$PY" run.py experiment=roselora_facts_pretrain logger=csv "paths.log_dir=$LOGS" "$@"
"$PY" run.py -m experiment=roselora_facts_finetune adapter.density=0.1,0.3 adapter.t_init=100 adapter.t_final=800 \
    adapter.clamp=null "${COMMON[@]}" "$@"
"$PY" run.py -m experiment=roselora_facts_finetune adapter=lora adapter.alpha=32 adapter.dropout=0.1 "${COMMON[@]}" "$@"

"$PY" -m experiments.report roselora --runs "$LOGS" --out "$LOGS/reports/roselora" --no-wandb > /dev/null
mkdir -p experiments/roselora/results
cp "$LOGS"/reports/roselora/facts_finetune.* experiments/roselora/results/
