#!/usr/bin/env bash
# The AutoPASTA CPU analog (../shared/papers/autopasta.md §5.1): for seeds 0, 1, 2, a tiny LLaMA trained here on
# recall with distractors (2-6 sentences; experiment=autopasta_recall_train, 1000 steps, one training per seed; the
# script stops if a seed's model did not learn the lookup: validation loss above 0.5, the plateau is ~1.1), then, with
# that seed's model, test examples, held-out profiling examples and random control, at 16- and 24-sentence
# contexts: AutoPASTA (profiles the steered heads on 200 held-out examples at N = 16 and saves them per seed;
# N = 24 reuses them; stage 1 by attention, and by probing as a second row), iterative prompting, direct prompting,
# PASTA on the gold sentence (oracle) and on a random sentence, with the AutoPASTA heads; then the table experiments/autopasta/recall.yaml into
# experiments/autopasta/results/.
#   experiments/autopasta/run_analog.sh            (trains the three models first: ~5 min each on one quiet thread)
#   SKIP_TRAIN=1 experiments/autopasta/run_analog.sh   (the models of $LOGS/autopasta_recall_train/seed={0,1,2})
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"
SEEDS="${SEEDS:-0 1 2}"
HEADS='steering.heads_file=${paths.log_dir}/autopasta_heads/recall_seed${seed}.json'
for s in $SEEDS; do
  if [ -z "${SKIP_TRAIN:-}" ]; then
    "$PY" run.py experiment=autopasta_recall_train logger=csv "paths.log_dir=$LOGS" seed=$s
  fi
  "$PY" - "$LOGS/autopasta_recall_train/seed=$s/results.json" <<'EOF'
import json, sys
loss = json.load(open(sys.argv[1]))["table/val_loss"]
if loss > 0.5:
    sys.exit(f"{sys.argv[1]}: validation loss {loss:.3f} > 0.5: this seed's model did not learn the key-value lookup "
             "(the plateau is ~1.1); train it longer (trainer.max_steps) or at a lower method.lr before steering it.")
EOF
  COMMON=(experiment=autopasta_recall logger=csv paper=null "paths.log_dir=$LOGS" seed=$s)
  # stage 1 = the sentence a designated head of the model attends to most (the head with the best held-out
  # precision, spec §5.1); the probe identification (each sentence alone) as a second AutoPASTA row, same heads
  "$PY" run.py -m "${COMMON[@]}" runner.task.sentences=16 steering=autopasta steering.identify=attention "$HEADS"  # profiles, saves
  "$PY" run.py -m "${COMMON[@]}" runner.task.sentences=24 steering=autopasta steering.identify=attention "$HEADS"
  "$PY" run.py -m "${COMMON[@]}" runner.task.sentences=16,24 steering=autopasta steering.identify=probe "$HEADS"
  "$PY" run.py -m "${COMMON[@]}" runner.task.sentences=16,24 steering=autopasta steering.identify=attention "$HEADS" \
      steering.apply=append
  "$PY" run.py -m "${COMMON[@]}" runner.task.sentences=16,24
  "$PY" run.py -m "${COMMON[@]}" runner.task.sentences=16,24 steering=pasta "$HEADS" runner.task.highlight=oracle,random
done

"$PY" -m experiments.report autopasta --runs "$LOGS" --out "$LOGS/reports/autopasta" --no-wandb > /dev/null
mkdir -p experiments/autopasta/results
cp "$LOGS"/reports/autopasta/* experiments/autopasta/results/
