"""A golden file: per-step (or per-batch) numbers of one run under a `# key: value` header, and how two
of them differ.

Layout (plain CSV after the header; an empty cell = not logged at that step, e.g. val/loss between
validations)::

    # name: quickstart_adamw
    # run: python run.py experiment=quickstart method=adamw ...
    # commit: ...
    # tolerance: rtol=1e-05 atol=0 (why)
    step,train/loss,val/loss
    0,3.5043933391571045,

Values are written with ``repr``, which round-trips a float exactly, so "unchanged" means bit-identical.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    key: str  # the metrics.csv column that numbers the rows: "step" (lm, numeric) or "batch" (generate)
    columns: list[str]
    rows: dict[int, dict[str, float]] = field(default_factory=dict)  # key -> {column: value}

    def value(self, k: int, column: str) -> float | None:
        return self.rows.get(k, {}).get(column)


def from_metrics(path: Path, key: str, columns: list[str]) -> Table:
    """The ``columns`` of a run's metrics.csv, one row per ``key`` value (Lightning writes the train
    and the val numbers of one step on separate lines: they are merged)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in [key, *columns] if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} has no column {missing} (it has {reader.fieldnames}): the run no longer "
                             "logs it; fix the run, or the golden run's columns in tests/golden/runs.py")
        table = Table(key, list(columns))
        for line in reader:
            k = int(float(line[key]))
            for c in columns:
                if line[c] in ("", None):
                    continue
                row = table.rows.setdefault(k, {})
                v = float(line[c])
                if c in row and not same(row[c], v):
                    raise ValueError(f"{path}: {c} logged twice at {key} {k} ({row[c]!r}, {v!r})")
                row[c] = v
    table.rows = dict(sorted(table.rows.items()))
    return table


def write(path: Path, header: dict[str, str], table: Table) -> None:
    buf = io.StringIO()
    for k, v in header.items():
        buf.write(f"# {k}: {v}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([table.key, *table.columns])
    for k, row in table.rows.items():
        w.writerow([k, *(repr(row[c]) if c in row else "" for c in table.columns)])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(buf.getvalue())
    tmp.replace(path)


def read(path: Path) -> tuple[dict[str, str], Table]:
    header, body = {}, []
    for line in path.read_text().splitlines():
        if line.startswith("# "):
            k, _, v = line[2:].partition(": ")
            header[k] = v
        elif line:
            body.append(line)
    reader = csv.reader(body)
    key, *columns = next(reader)
    table = Table(key, columns)
    for cells in reader:
        table.rows[int(cells[0])] = {c: float(v) for c, v in zip(columns, cells[1:]) if v != ""}
    return header, table


def same(a: float | None, b: float | None) -> bool:
    return a == b or (a is not None and b is not None and math.isnan(a) and math.isnan(b))


@dataclass
class ColumnDiff:
    """How one column moved between the golden and a new run (only columns that moved at all)."""

    column: str
    compared: int = 0  # values present in either table
    max_abs: float = 0.0
    max_rel: float = 0.0
    first: tuple | None = None  # (key, old, new) at the first row where it differs at all
    largest: tuple | None = None  # (key, old, new) where the absolute change is largest
    beyond: list[tuple] = field(default_factory=list)  # (key, old, new) of every value beyond tolerance


def compare(old: Table, new: Table, rtol: float, atol: float) -> list[ColumnDiff]:
    """Per column: the largest absolute and relative change, the first row that differs and the values
    beyond ``|new - old| <= atol + rtol * |old|``. A value present on one side only, or a column or a
    step that appeared or vanished, is always beyond tolerance."""
    diffs = []
    keys = sorted(set(old.rows) | set(new.rows))
    for c in dict.fromkeys([*old.columns, *new.columns]):
        d = ColumnDiff(c)
        for k in keys:
            a, b = old.value(k, c), new.value(k, c)
            if a is None and b is None:
                continue
            d.compared += 1
            if same(a, b):
                continue
            d.first = d.first or (k, a, b)
            if a is None or b is None or math.isnan(a) or math.isnan(b):
                d.beyond.append((k, a, b))
                d.max_abs = d.max_rel = math.inf
                continue
            err = abs(b - a)
            if d.largest is None or err > d.max_abs:
                d.largest = (k, a, b)
            d.max_abs = max(d.max_abs, err)
            d.max_rel = max(d.max_rel, err / abs(a) if a else math.inf)
            if err > atol + rtol * abs(a):
                d.beyond.append((k, a, b))
        if d.first is not None:
            diffs.append(d)
    return diffs


def describe(diffs: list[ColumnDiff], key: str, rtol: float, atol: float) -> str:
    """What moved, one line per column ("unchanged" when nothing did, bit for bit)."""
    if not diffs:
        return "unchanged"
    lines = []
    for d in diffs:
        k, a, b = d.first
        verdict = (f"{len(d.beyond)} of {d.compared} values beyond tolerance (rtol={rtol:g} atol={atol:g})"
                   if d.beyond else "all within tolerance")
        largest = f", largest at {key} {d.largest[0]} ({d.largest[1]!r} -> {d.largest[2]!r})" if d.largest else ""
        lines.append(f"{d.column}: max abs change {d.max_abs:.3g}, max rel change {d.max_rel:.3g}, first differs "
                     f"at {key} {k} ({a!r} -> {b!r}){largest}; {verdict}")
    return "\n".join(lines)


def failure(path: str, diffs: list[ColumnDiff], key: str, rtol: float, atol: float, regenerate: str,
            why: str = "") -> str | None:
    """The test's message when any value is beyond tolerance (None when all are within): the file, the
    column, the step, golden and new values, and the command that regenerates the file."""
    bad = [d for d in diffs if d.beyond]
    if not bad:
        return None
    lines = [f"{path} drifted beyond its tolerance (rtol={rtol:g} atol={atol:g}{'; ' + why if why else ''}):"]
    for d in bad:
        k, a, b = d.beyond[0]
        lines.append(f"  column {d.column}, {key} {k}: golden {a!r}, now {b!r} "
                     f"({len(d.beyond)} of {d.compared} values beyond; max rel change {d.max_rel:.3g})")
    lines.append(f"If the change is intended, regenerate and commit the file: {regenerate}")
    return "\n".join(lines)
