#!/usr/bin/env bash
# The AutoPASTA CPU analog (../shared/papers/autopasta.md §5.1): a tiny LLaMA trained here on recall with
# distractors (2-6 sentences), then, for seeds 0, 1, 2 (test examples, held-out profiling examples and the
# random control) and 16- and 24-sentence contexts: AutoPASTA (profiles the steered heads on 200 held-out
# examples at N = 16 and saves them per seed; N = 24 reuses them), iterative prompting, direct prompting,
# PASTA on the gold sentence (oracle) and on a random sentence, with the AutoPASTA heads; then the table
# experiments/autopasta/recall.yaml into experiments/autopasta/results/.
#   experiments/autopasta/run_analog.sh [TRAINED_RUN_FOLDER]
# Without a folder it trains one first: experiment=autopasta_recall_train (2000 steps), then 2000 more steps
# from those weights (runner.init_from; a fresh cosine schedule), the model the committed results used.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"
CKPT="${1:-}"
if [ -z "$CKPT" ]; then
  "$PY" run.py experiment=autopasta_recall_train logger=csv "paths.log_dir=$LOGS"
  "$PY" run.py experiment=autopasta_recall_train logger=csv "paths.log_dir=$LOGS" name=autopasta_recall_train_more \
      "runner.init_from=$LOGS/autopasta_recall_train/default"
  CKPT="$(ls -d "$LOGS"/autopasta_recall_train_more/*/ | head -1)"
fi
HEADS='steering.heads_file=${paths.log_dir}/autopasta_heads/recall_seed${seed}.json'
COMMON=(experiment=autopasta_recall "runner.checkpoint=$CKPT" logger=csv paper=null "paths.log_dir=$LOGS" seed=0,1,2)

"$PY" run.py -m "${COMMON[@]}" runner.task.sentences=16 steering=autopasta "$HEADS"     # profiles, saves the heads
"$PY" run.py -m "${COMMON[@]}" runner.task.sentences=24 steering=autopasta "$HEADS"
"$PY" run.py -m "${COMMON[@]}" runner.task.sentences=16,24 steering=autopasta steering.apply=append
"$PY" run.py -m "${COMMON[@]}" runner.task.sentences=16,24
"$PY" run.py -m "${COMMON[@]}" runner.task.sentences=16,24 steering=pasta "$HEADS" runner.task.highlight=oracle,random

"$PY" -m experiments.report autopasta --runs "$LOGS" --out "$LOGS/reports/autopasta" --no-wandb > /dev/null
mkdir -p experiments/autopasta/results
cp "$LOGS"/reports/autopasta/* experiments/autopasta/results/
