#!/usr/bin/env bash
# Every GPU check of this repo in one command, on one H100/H200 (about 8 minutes):
#
#     REPROLAB_COMMIT=$(git rev-parse HEAD) bash benchmarks/gpu.sh [OUT_DIR]
#
# 1. the Triton kernel tests on the GPU (compiled kernels, not the interpreter CI uses), and CholeskyQR2 there;
# 2. python -m benchmarks.gpu_cosmos (COSMOS kernels vs twins, LLaMA-60M/130M training steps);
# 3. python -m benchmarks.gear_gpu (GEAR kernels vs twins, LLaMA-7B-shape decode; GEAR_ARGS adds flags).
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
# The 2026-11-27 run took 276 s (kernel tests 31 s) with GEAR_ARGS="--batches 32 --new 256".
set -u
out=${1:-gpu_out}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$py" -c "import torch, triton, transformers; print('torch', torch.__version__, 'triton', triton.__version__, 'transformers', transformers.__version__)"
  timeout "${KERNEL_TESTS_S:-120}" "$py" -m pytest tests/cosmos/kernels tests/test_linalg.py -q -p no:cacheprovider
  timeout "${COSMOS_S:-200}" "$py" -m benchmarks.gpu_cosmos
  # shellcheck disable=SC2086
  timeout "${GEAR_S:-240}" "$py" -m benchmarks.gear_gpu ${GEAR_ARGS:-}
} 2>&1 | tee "$out/gpu.log"
cp benchmarks/results/gpu_cosmos.* benchmarks/results/gear_gpu*.* "$out"/ 2>/dev/null
ls -la "$out"
