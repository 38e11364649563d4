#!/usr/bin/env bash
# TempNet at paper scale (../shared/papers/tempnet.md §2.5): Tables 1, 2 and 3. Needs GPUs, the HF hub (OpenWebText,
# GPT-2 / LLaMA-2 weights and tokenizers, the lm-eval datasets, CC3M and the zero-shot sets) and `pip install '.[eval]'`.
# Not run in this repo. Table 2's official run is 8 GPUs of 256 pairs, all-gathered: hardware=ddp trainer.devices=8.
#   experiments/tempnet/run_paper.sh [extra Hydra overrides, e.g. hardware=ddp]
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python}"
LOGS="${REPROLAB_LOG_DIR:-logs}"
# TempNet of the GPT-NeoX code: tau in [0.5, 5], its own constant lr 2e-6 with weight decay 0.1, the padded vocabulary
GPT2_TEMPNET=(temperature=tempnet temperature.tau_min=0.5 temperature.tau_max=5 temperature.vocab_size=50304 temperature.lr=2e-6
              temperature.weight_decay=0.1)
EVAL=(experiment=tempnet_eval "paths.log_dir=$LOGS")
run() { "$PY" run.py "paths.log_dir=$LOGS" "$@"; }

# GPT-2 from scratch (Table 1 rows 1-2, Table 3) and finetuned (Table 1 rows 3-4): train, then score
for exp in gpt2_scratch gpt2_finetune; do
  run experiment=tempnet_$exp objective=next_token "$@"
  run experiment=tempnet_$exp objective=dro_lm objective.rho=8 "${GPT2_TEMPNET[@]}" "$@"
done
run experiment=tempnet_gpt2_scratch objective=dro_lm objective.rho=8 temperature=global_tau temperature.learnable=true "$@"
run experiment=tempnet_gpt2_scratch objective=next_token "${GPT2_TEMPNET[@]}" "$@"
D="$LOGS/tempnet_gpt2_scratch"
F="$LOGS/tempnet_gpt2_finetune"
GPT2=(model=gpt2_small model.vocab_size=50304 model.max_position_embeddings=2048 model.tie_embeddings=false runner.tokenizer=openai-community/gpt2)
"$PY" run.py "${EVAL[@]}" "${GPT2[@]}" runner.label=gpt2_scratch_tau1 "runner.checkpoint='$D/objective=next_token'"
"$PY" run.py "${EVAL[@]}" "${GPT2[@]}" "${GPT2_TEMPNET[@]}" runner.label=gpt2_scratch_tempnet \
    "runner.checkpoint='$D/objective.rho=8,objective=dro_lm,temperature.lr=2e-6,temperature.tau_max=5,temperature.tau_min=0.5,temperature.vocab_size=50304,temperature.weight_decay=0.1,temperature=tempnet'"
"$PY" run.py "${EVAL[@]}" "${GPT2[@]}" temperature=global_tau runner.label=gpt2_scratch_dro_global \
    "runner.checkpoint='$D/objective.rho=8,objective=dro_lm,temperature.learnable=true,temperature=global_tau'"
"$PY" run.py "${EVAL[@]}" "${GPT2[@]}" "${GPT2_TEMPNET[@]}" runner.label=gpt2_scratch_tempnet_ce \
    "runner.checkpoint='$D/objective=next_token,temperature.lr=2e-6,temperature.tau_max=5,temperature.tau_min=0.5,temperature.vocab_size=50304,temperature.weight_decay=0.1,temperature=tempnet'"
GPT2F=(model=gpt2_small runner.tokenizer=openai-community/gpt2)
"$PY" run.py "${EVAL[@]}" "${GPT2F[@]}" runner.label=gpt2_finetune_tau1 "runner.checkpoint='$F/objective=next_token'"
"$PY" run.py "${EVAL[@]}" "${GPT2F[@]}" temperature=tempnet temperature.tau_min=0.5 temperature.tau_max=5 \
    runner.label=gpt2_finetune_tempnet \
    "runner.checkpoint='$F/objective.rho=8,objective=dro_lm,temperature.lr=2e-6,temperature.tau_max=5,temperature.tau_min=0.5,temperature.vocab_size=50304,temperature.weight_decay=0.1,temperature=tempnet'"

# Frozen LLaMA-2 7B / 13B: the pretrained model (tau = 1), then TempNet trained on it
for size in 7b 13b; do
  run experiment=tempnet_llama2_$size "$@"
  "$PY" run.py "${EVAL[@]}" model=llama2_$size runner.label=llama2_${size}_tau1
  "$PY" run.py "${EVAL[@]}" model=llama2_$size temperature=tempnet temperature.tau_min=0.01 temperature.tau_max=2 \
      runner.label=llama2_${size}_tempnet "runner.checkpoint='$LOGS/tempnet_llama2_$size/default'"
done

# CLIP on CC3M (Table 2): train each row, then its zero-shot evaluations into the run's results.json
C="$LOGS/tempnet_clip_cc3m"
run experiment=tempnet_clip_cc3m objective=clip "$@"
run experiment=tempnet_clip_cc3m objective=sogclr objective.gamma=0.8 "$@"
run experiment=tempnet_clip_cc3m objective=isogclr "$@"
run experiment=tempnet_clip_cc3m objective=isogclr objective.rho=7 temperature=tempnet_clip temperature.lr=3e-5 "$@"
for row in objective=clip objective.gamma=0.8,objective=sogclr objective=isogclr \
    objective.rho=7,objective=isogclr,temperature.lr=3e-5,temperature=tempnet_clip; do
  "$PY" -m experiments.tempnet.zero_shot --run "$C/$row"
done
"$PY" -m experiments.report tempnet --runs "$LOGS"
