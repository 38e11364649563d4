"""The Triton kernel of TempNet's decode path (`reprolab.kernels.tempnet.temper_triton`) vs its PyTorch twin (the eager
`tau_folded` and the division), under TRITON_INTERPRET=1 in a fresh interpreter (`tests/tempnet/kernel_checks.py`):
odd vocabularies and hidden sizes (masked tails), several block sizes (the online softmax across chunks), shift_max,
zero logits; and `methods.tempnet.compiled.triton_runner`, what temperature.compiled=true runs on CUDA."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from reprolab.registry import ROOT

pytest.importorskip("triton")


def test_temper_kernel_matches_its_twin():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "tests.tempnet.kernel_checks"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(res) == 5  # four shapes and the CUDA path's runner
    for name, r in res.items():
        assert r["rel"] < 1e-5 and r["shape"] and r["zero_finite"], (name, r)
