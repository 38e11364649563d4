"""`make bench` (= python -m benchmarks) can call every benchmark, and records how each was made."""
from __future__ import annotations

import inspect
import sys

import pytest

from benchmarks.__main__ import modules


@pytest.mark.parametrize("module", modules(), ids=lambda m: m.__name__)
def test_every_benchmark_main_takes_argv(module):
    """`python -m benchmarks` calls ``main([])``: each main takes an argument list (and parses it)."""
    inspect.signature(module.main).bind([])


def test_a_benchmark_run_by_the_package_records_its_own_command(monkeypatch):
    from benchmarks import common

    monkeypatch.setattr(sys, "argv", ["/repo/benchmarks/__main__.py", "gear_memory", "cosmos_step"])
    monkeypatch.setattr(common, "RUNNING", "gear_memory")
    assert common.provenance()["command"] == "python -m benchmarks.gear_memory"
    monkeypatch.setattr(sys, "argv", ["/repo/benchmarks/cosmos_step.py", "--reps", "3"])
    assert common.provenance()["command"] == "python -m benchmarks.cosmos_step --reps 3"


def test_cosmos_step_flop_counts_match_the_closed_forms():
    """Square n: Newton-Schulz 30 n^3; SOAP 12 n^3 + (8 n^3 + 2 (2 + 8/3) n^3) / 10 per step; COSMOS's
    Newton-Schulz on n x (n - r) where it takes the complement (256 x 256, r = 64), else Muon's."""
    from benchmarks.cosmos_step import step_flops

    for n in (64, 768):
        f = step_flops(n, n, 16)
        assert f["Muon"] == 30 * n**3
        assert f["SOAP"] == pytest.approx((12 + (8 + 2 * (2 + 8 / 3)) / 10) * n**3)
    assert step_flops(768, 2048, 64)["Muon"] == step_flops(2048, 768, 64)["Muon"]
    assert step_flops(64, 64, 16)["COSMOS NS"] == 30 * 64**3  # too small to pay: full
    assert step_flops(256, 256, 64)["COSMOS NS"] == 5 * (4 * 192**2 * 256 + 2 * 192**3)
