#!/usr/bin/env bash
# Every GPU check of this repo in one command, on one H100/H200 (at most 8 minutes with start-up: the
# step limits below add up to 450 s):
#
#     REPROLAB_COMMIT=$(git rev-parse HEAD) bash benchmarks/gpu.sh [OUT_DIR]
#
# 1. the Triton kernel tests on the GPU (compiled kernels, not the interpreter CI uses), and CholeskyQR2 there;
# 2. python -m benchmarks.gpu_cosmos at LLaMA-130M and 350M, AdamW/Muon/SOAP/COSMOS (issue 20's targets:
#    COSMOS optimizer step <= 0.9x SOAP's and <= 1.3x Muon's, COSMOS training step <= 1.3x AdamW's);
# 3. python -m benchmarks.gear_gpu, fp16 vs GEAR (fused decode), LLaMA-7B shape, prompt 1000, 500 new tokens:
#    at equal batch 32 (GEAR not slower than fp16: gear_gpu_b32.md) and at a fixed budget of 40 GiB (each
#    cache at the largest batch that fits; GEAR >= 2x fp16's tokens/s: gear_gpu_budget.md).
# Each step has its own time limit (KERNEL_TESTS_S, COSMOS_S, GEAR_S seconds), so one that hangs leaves
# the others their time; gear_gpu writes its tables after every row. The log (gpu.log) and the result
# files (benchmarks/results/gpu_cosmos.* and gear_gpu*.*) are copied to OUT_DIR.
# REPROLAB_COMMIT names the commit: the tree shipped to a GPU machine may carry no .git, or a stale one.
#
# On this workplace's lent GPU machines (torch 2.11, transformers 5.17, no hydra/omegaconf): prepare
# here, then carry .whl and .devsite (both in .git/info/exclude) and install before running:
#   python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl transformers==5.24.0 hydra-core==1.3.2 omegaconf==2.3.0
#   mkdir -p .devsite && cp -r .venv/lib/python3.*/site-packages/antlr4 .devsite/   # antlr4 4.9.3 has no wheel
#   # on the GPU machine:
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
#     && PYTHONPATH=/tmp/site:$PWD/.devsite:$PWD REPROLAB_COMMIT=<commit> bash benchmarks/gpu.sh $OUT
# The 2026-11-27 run took 276 s (kernel tests 31 s) with GEAR_ARGS="--batches 32 --new 256". Not run since
# these steps were set (issue 20: no GPU was lent to that session): the GEAR decode steps may not finish 500
# tokens in their limits at today's GEAR speed (batch 32 took 135 s for 500 tokens in that run, and the
# budget batch is larger); each writes its table after every row, so what it measured is kept.
set -u
out=${1:-gpu_out}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$py" -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"
  timeout "${KERNEL_TESTS_S:-60}" "$py" -m pytest tests/cosmos/kernels tests/test_linalg.py -q -p no:cacheprovider
  timeout "${COSMOS_S:-150}" "$py" -m benchmarks.gpu_cosmos --models llama_130m,llama_350m \
    --optimizers AdamW,Muon,SOAP,COSMOS --reps 10 --steps 10
  timeout "${GEAR_B32_S:-110}" "$py" -m benchmarks.gear_gpu --batches 32 --caches fp16,GEAR --name gear_gpu_b32
  timeout "${GEAR_BUDGET_S:-130}" "$py" -m benchmarks.gear_gpu --budget-gib 40 --caches fp16,GEAR --name gear_gpu_budget
} 2>&1 | tee "$out/gpu.log"
cp benchmarks/results/gpu_cosmos.* benchmarks/results/gear_gpu*.* "$out"/ 2>/dev/null
ls -la "$out"
