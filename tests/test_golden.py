"""Golden per-step numbers: every run of tests/golden/runs.py, rerun on CPU, matches its file in
tests/golden/: bit for bit where the file's `machine` line is this machine's, within the tolerance the
file states elsewhere. A failure names the file, the column, the step, the golden and the new value, and
the command that regenerates the file (`python -m tests.golden`).
"""
from __future__ import annotations

import pytest

from tests.golden.runs import BY_NAME, GOLDEN, REGENERATE, make, tolerance
from tests.golden.table import compare, failure, read, write


def stale(g, file_header: dict) -> str | None:
    for key, now in (("run", g.command), ("tolerance", g.tolerance)):
        if file_header.get(key) != now:
            return (f"{g.path.name}: its header's {key} line ({file_header.get(key)!r}) is not what tests/golden/runs.py "
                    f"says ({now!r}); regenerate: {REGENERATE} {g.name}")
    return None


@pytest.mark.parametrize("g", [pytest.param(g, id=g.name, marks=[pytest.mark.slow] if g.slow else [])
                               for g in GOLDEN])
def test_run_matches_its_golden_file(g, tmp_path):
    assert g.path.exists(), f"{g.path} is missing; make it with {REGENERATE} {g.name}"
    file_header, golden = read(g.path)
    assert stale(g, file_header) is None, stale(g, file_header)
    new = make(g, tmp_path)
    rtol, atol, why = tolerance(g, file_header)
    problem = failure(f"tests/golden/{g.path.name}", compare(golden, new, rtol, atol), golden.key, rtol, atol,
                      f"{REGENERATE} {g.name}", why)
    assert problem is None, problem


@pytest.mark.slow
@pytest.mark.parametrize("row", ["AdamW", "COSMOS"])
def test_full_quickstart_golden_matches_the_readme(row):
    """The README's quickstart table (`make run`: default threads, the commit and machine it names) prints
    each val loss rounded; the full-length golden's last val loss (one thread, here) agrees with it to that
    rounding plus the golden file's cross-machine tolerance (COSMOS's 300 steps move with the summation
    order: see tests/golden/runs.py)."""
    from reprolab.registry import ROOT

    g = BY_NAME[f"quickstart_full_{row.lower()}"]
    line = next(l for l in (ROOT / "README.md").read_text().splitlines() if l.startswith(f"| {row} |"))
    printed = line.split("|")[2].strip().strip("*")
    last = [r["val/loss"] for r in read(g.path)[1].rows.values() if "val/loss" in r][-1]
    rounding = 0.5 * 10.0 ** -len(printed.split(".")[1])
    assert abs(last - float(printed)) <= rounding + g.rtol * abs(last), (row, last, line)


def test_a_perturbed_value_fails_with_file_column_step_and_command(tmp_path):
    g = BY_NAME["quickstart_adamw"]
    file_header, golden = read(g.path)
    step = sorted(golden.rows)[3]
    moved = read(g.path)[1]
    old = moved.rows[step]["train/loss"]
    moved.rows[step]["train/loss"] = old * (1 + 10 * g.rtol)
    message = failure("tests/golden/x.csv", compare(golden, moved, g.rtol, g.atol), "step", g.rtol, g.atol, "regen x")
    assert message is not None
    for part in ("tests/golden/x.csv", "column train/loss", f"step {step}", repr(old), repr(moved.rows[step]["train/loss"]),
                 "regen x"):
        assert part in message, (part, message)
    moved.rows[step]["train/loss"] = old * (1 + g.rtol / 10)  # within tolerance: passes, but is reported as moved
    diffs = compare(golden, moved, g.rtol, g.atol)
    assert failure("x", diffs, "step", g.rtol, g.atol, "") is None and diffs[0].first == (step, old, moved.rows[step]["train/loss"])
    del moved.rows[step]["train/loss"]  # a value that vanished is always a failure
    assert failure("x", compare(golden, moved, g.rtol, g.atol), "step", g.rtol, g.atol, "") is not None
    write(tmp_path / "g.csv", file_header, golden)  # files round-trip bit for bit
    assert read(tmp_path / "g.csv") == (file_header, golden) and compare(golden, read(tmp_path / "g.csv")[1], 0, 0) == []
