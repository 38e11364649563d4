#!/usr/bin/env bash
# The AutoPASTA CPU analog (../shared/papers/autopasta.md §5.1): for seeds 0, 1, 2, a tiny LLaMA trained here on
# recall with distractors (2-6 sentences; experiment=autopasta_recall_train, one training per seed), then, with
# that seed's model, test examples, held-out profiling examples and random control, at 16- and 24-sentence
# contexts: AutoPASTA (profiles the steered heads on 200 held-out examples at N = 16 and saves them per seed;
# N = 24 reuses them; stage 1 by attention, and by probing as a second row), iterative prompting, direct prompting,
# PASTA on the gold sentence (oracle) and on a random sentence, with the AutoPASTA heads; then the table experiments/autopasta/recall.yaml into
# experiments/autopasta/results/.
#   experiments/autopasta/run_analog.sh            (trains the three models first: 2 x 1000 steps, ~15-30 min each on one thread)
#   SKIP_TRAIN=1 experiments/autopasta/run_analog.sh   (the models of $LOGS/autopasta_recall_train_more/seed={0,1,2})
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
    # 1000 more steps from those weights (a fresh warmup and cosine): a seed still at the plateau gets another go
    "$PY" run.py experiment=autopasta_recall_train logger=csv "paths.log_dir=$LOGS" seed=$s \
        name=autopasta_recall_train_more "runner.init_from='$LOGS/autopasta_recall_train/seed=$s'"
  fi
  # the continued model under a stable name, the experiment's runner.checkpoint (its folder is named by init_from)
  ln -sfn "$(basename "$(ls -d "$LOGS"/autopasta_recall_train_more/runner.init_from=*seed=$s/ | head -1)")" \
      "$LOGS/autopasta_recall_train_more/seed=$s"
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
