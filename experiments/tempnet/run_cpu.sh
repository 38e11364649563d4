#!/usr/bin/env bash
# TempNet's CPU analogs (../shared/papers/tempnet.md §5), 3 seeds each, then the tables
# (experiments/tempnet/{markov,markov_frozen,clip_gmm}.yaml) and the tau/entropy analysis into experiments/tempnet/results/.
#   experiments/tempnet/run_cpu.sh [extra Hydra overrides]
# (a) Markov teacher, trained from scratch: CE at tau = 1, DRO with one learnable global tau, TempNet + DRO.
# (b) a frozen over-confident LM (CE on 128 sequences, 600 steps), then only TempNet trained on it:
#     DRO at rho = 2 and 4, and plain CE ("TempNet without DRO").
# (c) synthetic CLIP retrieval: CLIP (tau 0.05), CyCLIP (tau 0.05), SogCLR, iSogCLR, TempNet-iSogCLR.
# Each multirun runs its jobs one after the other in one process, one torch thread.
set -euo pipefail
cd "$(dirname "$0")/../.."
export OMP_NUM_THREADS=1
PY="${PYTHON:-./.venv/bin/python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"
COMMON=(seed=0,1,2 logger=csv trainer.enable_progress_bar=false "paths.log_dir=$LOGS")
TEMPNET=(temperature=tempnet temperature.hidden=32 temperature.tau_min=0.05 temperature.tau_max=5)

# (a)
"$PY" run.py -m experiment=tempnet_markov objective=next_token "${COMMON[@]}" "$@"
"$PY" run.py -m experiment=tempnet_markov objective=dro_lm objective.rho=4 temperature=global_tau \
    temperature.learnable=true "${COMMON[@]}" "$@"
"$PY" run.py -m experiment=tempnet_markov objective=dro_lm objective.rho=4 "${TEMPNET[@]}" "${COMMON[@]}" "$@"
# (b) one over-confident LM, then TempNet on it (frozen) over 3 seeds
"$PY" run.py experiment=tempnet_markov_overfit logger=csv trainer.enable_progress_bar=false "paths.log_dir=$LOGS" "$@"
LM="$LOGS/tempnet_markov_overfit/default"
"$PY" run.py -m experiment=tempnet_markov_frozen objective.rho=2,4 "runner.init_from=$LM" "${COMMON[@]}" "$@"
"$PY" run.py -m experiment=tempnet_markov_frozen objective=next_token "runner.init_from=$LM" "${COMMON[@]}" "$@"
# (c)
"$PY" run.py -m experiment=tempnet_clip_gmm objective=clip objective.tau=0.05 "${COMMON[@]}" "$@"
"$PY" run.py -m experiment=tempnet_clip_gmm objective=cyclip objective.tau=0.05 "${COMMON[@]}" "$@"
"$PY" run.py -m experiment=tempnet_clip_gmm objective=sogclr objective.tau=0.05 objective.gamma=0.8 "${COMMON[@]}" "$@"
"$PY" run.py -m experiment=tempnet_clip_gmm objective=isogclr "${COMMON[@]}" "$@"
"$PY" run.py -m experiment=tempnet_clip_gmm objective=isogclr temperature=tempnet_clip "${COMMON[@]}" "$@"

"$PY" -m experiments.report tempnet --runs "$LOGS" --out "$LOGS/reports/tempnet" --no-wandb > /dev/null
mkdir -p experiments/tempnet/results
cp "$LOGS"/reports/tempnet/{markov,markov_frozen,clip_gmm}.* experiments/tempnet/results/
"$PY" -m experiments.tempnet.tau_entropy --runs "$LOGS" > /dev/null
