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
