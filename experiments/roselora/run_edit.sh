#!/usr/bin/env bash
# RoseLoRA CPU analog §5.1 (../shared/papers/roselora.md): pretrain the tiny LLaMA on the fact world, then 50 single
# edits (each on a fresh copy) with RoseLoRA (rho = 0.05, 0.2; clamp 3e-3 or none), LoRA (the same r, alpha,
# dropout, targets) and FT-M (full fine-tuning of layer 1's MLP down_proj), 3 seeds each; then the table
# experiments/roselora/facts_edit.yaml into experiments/roselora/results/.
#   experiments/roselora/run_edit.sh [extra Hydra overrides]
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"
COMMON=(seed=0,1,2 logger=csv paper=null "paths.log_dir=$LOGS")

"$PY" run.py experiment=roselora_facts_pretrain logger=csv "paths.log_dir=$LOGS" "$@"
"$PY" run.py -m experiment=roselora_facts_edit adapter=roselora adapter.density=0.05,0.2 adapter.clamp=0.003,null \
    "${COMMON[@]}" "$@"
"$PY" run.py -m experiment=roselora_facts_edit adapter=lora adapter.alpha=32 adapter.dropout=0.1 "${COMMON[@]}" "$@"
"$PY" run.py -m experiment=roselora_facts_edit adapter=ft_layer "adapter.target_modules=[layers.1.mlp.down_proj]" \
    "${COMMON[@]}" "$@"

"$PY" -m experiments.report roselora --runs "$LOGS" --out "$LOGS/reports/roselora" --no-wandb > /dev/null
mkdir -p experiments/roselora/results
cp "$LOGS"/reports/roselora/facts_edit.* experiments/roselora/results/
