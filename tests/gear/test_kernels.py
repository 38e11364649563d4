"""Triton kernels vs their PyTorch twins and vs "decompress then SDPA", under TRITON_INTERPRET=1.

Each check runs in a fresh interpreter (`tests/gear/kernel_checks.py`) so that TRITON_INTERPRET is
set before triton is first imported, whatever else this pytest worker has imported.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from reprolab.registry import ROOT

pytest.importorskip("triton")


def run_checks(which: str) -> dict:
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "tests.gear.kernel_checks", which], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_quantize_pack_kernel_is_bit_exact():
    res = run_checks("quant")
    for key, value in res.items():
        if key.endswith("_err"):
            assert value == 0.0, key
        else:
            assert value is True, key


def test_decode_attention_kernel_matches_twin_and_reference():
    res = run_checks("attention")
    for name, r in res.items():
        assert r["triton_vs_twin"] < 1e-5, (name, r)
        assert r["twin_vs_ref32"] < 1e-5, (name, r)  # exact math: fp32 decompression then SDPA
        assert r["triton_vs_ref32"] < 1e-5, (name, r)
        assert r["triton_vs_ref16"] < 2e-3, (name, r)  # the cache's fp16 reconstruction then SDPA
