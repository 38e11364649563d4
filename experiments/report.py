"""Build a paper's tables from run folders: ours (mean ± std over seeds, n) beside the paper's.

    python -m experiments.report <paper> [--runs DIR] [--out DIR] [--no-wandb]
    make report PAPER=<paper>

Reads ``experiments/<paper>/*.yaml`` (see CONTRIBUTING.md) and every finished run under ``--runs``
(default: ``logs/``); writes ``<table>.md``, ``<table>.csv`` and ``<table>.png`` per table to
``--out`` (default: ``<runs>/reports/<paper>``), and logs them to an offline W&B run (job type ``report``,
group ``<paper>``): each table as a W&B table and its PNG as an image, and the files as an artifact.
Reads no network. A cell no run filled says "not run"; a paper number we do not know says "n/a".
"""
from __future__ import annotations

import argparse
import atexit
import csv
import io
import logging
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from experiments.tables import Run, Table, TableError, load_runs, paper_tables, runs_for

log = logging.getLogger(__name__)


@dataclass
class Cell:
    mean: float | None = None
    std: float | None = None
    n: int = 0
    setting: str | None = None  # which configuration was chosen when the table is best_of

    def text(self, fmt: str) -> str:
        if self.n == 0:
            return "not run"
        s = fmt.format(self.mean)
        if self.n > 1:
            s += f" ± {fmt.format(self.std)}"
        return f"{s} (n={self.n})"


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


class Cells(dict):
    """``{(row, column label): Cell}`` of one table, with ``notes`` (e.g. a column no run measured) and
    ``label``: None for the table as defined, else the settings its runs share that the table does not."""

    def __init__(self, label: str | None = None):
        super().__init__()
        self.label, self.notes = label, []


def _fill(table: Table, runs: list[Run], label: str | None = None) -> Cells:
    """Every (row, column) cell from ``runs``; a cell no run filled is "not run" (a column whose runs all
    lack its metric gets a note naming it), the rest of the table is still built."""
    cells = Cells(label)
    beyond = table.match_keys
    for col in table.columns:
        col_runs = [r for r in runs if r.matches(col.match)]
        if col_runs and not any(col.metric in r.results for r in col_runs):
            have = sorted({k for r in col_runs for k in r.results})
            near = [k for k in have if k.split("@")[0] == col.metric.split("@")[0]] or have  # gap@100: the gap@k
            cells.notes.append(f"column {col.label!r}: no run recorded {col.metric} (not run at that size or step; "
                               f"the runs have {', '.join(near[:12])}{' ...' if len(near) > 12 else ''}).")
        for row, match in table.rows.items():
            found = [r for r in col_runs if r.matches(match) and col.metric in r.results]
            by_setting: dict[str, list[float]] = {}
            seen = set()  # one value per experiment, configuration and seed (`python run.py` = `-m method=cosmos`)
            for r in found:
                v = r.results[col.metric]
                config = (r.setting_beyond(beyond), r.name, str(r.seed) if r.seed is not None else r.path)
                if isinstance(v, (int, float)) and math.isfinite(v) and (table.best_of or config not in seen):
                    seen.add(config)
                    by_setting.setdefault(r.setting if table.best_of else config[0], []).append(float(v) * col.scale)
            if not by_setting:
                cells[row, col.label] = Cell()
                continue
            pick = max if col.higher_is_better else min
            setting = pick(by_setting, key=lambda s: statistics.fmean(by_setting[s]))
            mean, std = _stats(by_setting[setting])
            cells[row, col.label] = Cell(mean, std, len(by_setting[setting]), setting if len(by_setting) > 1 else None)
    return cells


def build_parts(table: Table, runs: list[Run]) -> list[Cells]:
    """The table as defined, then one labelled table per other setting its runs were made with.

    A run that misses the table's ``assumes`` (a 60-step run under a "300 steps" title) never fills
    it; neither does a run whose cell holds runs of another setting (overrides beyond the row and
    column keys and the seed), unless the table is ``best_of``. The cell keeps the default setting
    (or the one with most runs); the others get tables of their own, labelled with their overrides.
    """
    mine = runs_for(table, runs)
    beyond = table.match_keys
    others: dict[str, list[Run]] = {}
    kept = []
    for r in mine:
        misses = table.misses(r)
        if not misses:
            kept.append(r)
            continue
        extra = r.setting_beyond(beyond)
        assumed = ", ".join(f"{k}={v}" for k, v in table.assumes.items())
        label = ", ".join(misses + ([extra] if extra != "default" else [])) + f" (the table assumes {assumed})"
        others.setdefault(label, []).append(r)
    if not table.best_of:
        moved = set()
        for col in table.columns:
            for match in table.rows.values():
                by: dict[str, list[Run]] = {}
                for r in kept:
                    if r.matches(col.match) and r.matches(match) and col.metric in r.results:
                        by.setdefault(r.setting_beyond(beyond), []).append(r)
                if len(by) > 1:
                    main = min(by, key=lambda st: (st != "default", -len(by[st]), st))
                    moved |= {r.path for st, rs in by.items() if st != main for r in rs}
        for r in kept:
            if r.path in moved:
                others.setdefault(r.setting_beyond(beyond), []).append(r)
        kept = [r for r in kept if r.path not in moved]
    return [_fill(table, kept)] + [_fill(table, rs, label) for label, rs in sorted(others.items())]


def build(table: Table, runs: list[Run]) -> Cells:
    """The table as defined (see `build_parts` for the runs of other settings)."""
    return build_parts(table, runs)[0]


def best_rows(table: Table, cells) -> dict[str, str | None]:
    """Per column, the row with the best mean (by the column's higher_is_better)."""
    best = {}
    for col in table.columns:
        filled = [(row, cells[row, col.label].mean) for row in table.rows if cells[row, col.label].n]
        if not filled or col.higher_is_better is None:
            best[col.label] = None
            continue
        best[col.label] = (max if col.higher_is_better else min)(filled, key=lambda rv: rv[1])[0]
    return best


def provenance(paper: str, runs_dir: Path) -> str:
    from reprolab.rundir import git_state, machine_line

    g = git_state()
    dirty = " (with uncommitted changes)" if g.get("dirty") else ""
    return (
        f"Command: `python -m experiments.report {paper} --runs {runs_dir}` (each run's own command is in its "
        f"run.json)  \n"
        f"Commit: {g.get('commit')}{dirty}  \n"
        f"Machine: {machine_line()}  \n"
        f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}  \n"
        f"Runs: `{runs_dir}`"
    )


def _arrow(col) -> str:
    return {True: " ↑", False: " ↓", None: ""}[col.higher_is_better]


def markdown(table: Table, cells, header: str) -> str:
    best = best_rows(table, cells)
    cols = table.columns
    with_paper = table.paper_source is not None or bool(table.paper_values)
    head = ["row"]
    for c in cols:
        head += [f"{c.label} (ours){_arrow(c)}"] + ([f"{c.label} (paper)"] if with_paper else [])
    label = getattr(cells, "label", None)
    if label:  # runs of another setting: never mixed into the table as defined
        title = f"### {table.title}: runs with {label}"
        header = "Runs of this table made with other settings than the table above; kept apart, not mixed in."
    else:
        title = f"## {table.title}"
    lines = [title, "", header, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.rows:
        out = [row]
        for c in cols:
            cell = cells[row, c.label]
            text = cell.text(c.fmt)
            if cell.setting:
                text += f" [{cell.setting}]"
            out.append(f"**{text}**" if best[c.label] == row else text)
            if with_paper:
                pv = table.paper_value(row, c.label)
                out.append("n/a" if pv is None else c.fmt.format(pv))
        lines.append("| " + " | ".join(out) + " |")
    notes = ["", "Ours: mean ± std over seeds (n = number of seeds); bold = best of ours per column; "
             "not run = no finished run filled the cell."]
    if with_paper:
        notes.append(f"Paper numbers: {table.paper_source or 'source not given'}; n/a = not known to us "
                     "(never filled in by hand).")
    else:
        notes.append("This table has no paper numbers.")
    if table.best_of:
        notes.append("Cells with several settings (e.g. an lr sweep) report the best setting, shown in [brackets].")
    notes += [f"Note: {n}" for n in getattr(cells, "notes", [])]
    return "\n".join(lines + notes) + "\n"


def write_csv(table: Table, parts, path: Path) -> None:
    """One line per cell; the tables of runs with other settings follow, named ``<table> [<their settings>]``."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["table", "row", "column", "metric", "higher_is_better", "mean", "std", "n", "setting", "paper"])
    for cells in parts if isinstance(parts, list) else [parts]:
        name = table.name if not getattr(cells, "label", None) else f"{table.name} [{cells.label}]"
        for c in table.columns:
            for row in table.rows:
                cell = cells[row, c.label]
                w.writerow([name, row, c.label, c.metric, c.higher_is_better, cell.mean, cell.std, cell.n,
                            cell.setting or "", table.paper_value(row, c.label)])
    from reprolab.rundir import atomic_write

    atomic_write(path, buf.getvalue())


def plot(table: Table, cells, path: Path) -> None:
    """One panel per column: our mean ± std per row (bars), the paper's number as a marker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(table.rows)
    fig, axes = plt.subplots(1, len(table.columns), figsize=(max(4, 1.2 * len(rows)) * len(table.columns) ** 0.5 + 2, 3.6),
                             squeeze=False)
    for ax, c in zip(axes[0], table.columns):
        means = [cells[r, c.label].mean if cells[r, c.label].n else float("nan") for r in rows]
        stds = [cells[r, c.label].std if cells[r, c.label].n else 0.0 for r in rows]
        ax.bar(range(len(rows)), means, yerr=stds, capsize=3, color="tab:blue", label="ours")
        paper = [table.paper_value(r, c.label) for r in rows]
        if any(p is not None for p in paper):
            ax.scatter([i for i, p in enumerate(paper) if p is not None], [p for p in paper if p is not None],
                       marker="D", color="tab:red", zorder=3, label="paper")
            ax.legend(fontsize=7)
        finite = [m for m in means if math.isfinite(m)] + [p for p in paper if p is not None]
        if finite and min(finite) > 0 and not c.higher_is_better:
            lo, hi = min(finite), max(finite)
            ax.set_ylim(lo - 0.1 * (hi - lo + 1e-9) - 1e-3 * lo, hi + 0.1 * (hi - lo + 1e-9) + 1e-3 * hi)
        ax.set_xticks(range(len(rows)), rows, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{c.label}: {c.metric}{_arrow(c)}", fontsize=9)
    fig.suptitle(table.title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def log_wandb(paper: str, tables: list[tuple[Table, dict]], out: Path) -> None:
    import os

    import wandb

    os.environ.setdefault("WANDB_SILENT", "true")
    mode = os.environ.get("WANDB_MODE", "offline")
    run = wandb.init(project="reprolab", job_type="report", group=paper, name=f"report/{paper}", dir=str(out),
                     mode=mode if mode in ("online", "offline", "disabled") else "offline")
    # The table (`table/<name>`), its PNG (`plot/<name>`: the dashboards show both, experiments/dashboard) and
    # every file written (Markdown, CSV, PNG) as one artifact of the paper's tables.
    files = wandb.Artifact(f"{paper}-tables", type="paper-tables", description=f"the {paper} tables: Markdown, CSV, PNG")
    for table, cells in tables:
        data = [[row, c.label, c.metric, cells[row, c.label].mean, cells[row, c.label].std, cells[row, c.label].n,
                 table.paper_value(row, c.label)] for c in table.columns for row in table.rows]
        logged = {f"table/{table.name}": wandb.Table(columns=["row", "column", "metric", "mean", "std", "n", "paper"],
                                                      data=data)}
        if (out / f"{table.name}.png").exists():
            logged[f"plot/{table.name}"] = wandb.Image(str(out / f"{table.name}.png"), caption=table.title)
        run.log(logged)
        for suffix in (".md", ".csv", ".png"):
            if (out / f"{table.name}{suffix}").exists():
                files.add_file(str(out / f"{table.name}{suffix}"))
    run.log_artifact(files)
    run.finish()


def report(paper: str, runs_dir: Path, out: Path | None = None, use_wandb: bool = True) -> list[Path]:
    """Build every table of ``paper``; returns the Markdown files written."""
    from reprolab.rundir import atomic_write

    runs_dir = Path(runs_dir)
    out = Path(out) if out else runs_dir / "reports" / paper
    runs = load_runs(runs_dir)
    header = provenance(paper, runs_dir)
    written, built = [], []
    for table in paper_tables(paper):
        parts = build_parts(table, runs)
        cells = parts[0]
        md = out / f"{table.name}.md"
        atomic_write(md, "\n".join(markdown(table, part, header) for part in parts))
        write_csv(table, parts, out / f"{table.name}.csv")
        plot(table, cells, out / f"{table.name}.png")
        written.append(md)
        built.append((table, cells))
    if use_wandb:
        log_wandb(paper, built, out)
    return written


def main(argv=None) -> None:
    from reprolab.registry import ROOT

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("paper", help="a folder of experiments/ with table YAMLs")
    p.add_argument("--runs", type=Path, default=ROOT / "logs", help="folder holding run folders (searched recursively)")
    p.add_argument("--out", type=Path, default=None, help="where to write the tables (default <runs>/reports/<paper>)")
    p.add_argument("--no-wandb", action="store_true", help="do not log the tables to W&B")
    args = p.parse_args(argv)
    try:
        files = report(args.paper, args.runs, args.out, use_wandb=not args.no_wandb)
    except TableError as e:
        sys.exit(f"error: {e}")
    for f in files:
        print(f.read_text())
        print(f"(written: {f}, .csv, .png)")


class ReportCallback:
    """Hydra callback: rebuild the paper tables of what just ran, when a run or a sweep ends.

    A sweep may span experiments (``-m experiment=a,b``) and launchers that run jobs in other
    processes, so at its end the papers are read from the run folders written since it started.
    A failure here is reported but never hides the runs' own outcome; a sweep with failed jobs still
    rebuilds its tables from the jobs that finished.
    """

    def __init__(self):
        self.started = time.time()
        self.completed = False
        self.failed: list[str] = []  # the overrides of the sweep's jobs that failed (in this process)

    def _build(self, papers: set, config) -> None:
        import os

        # Lightning's ddp launcher re-runs run.py once per extra rank (LOCAL_RANK / NODE_RANK set): one report.
        if any(os.environ.get(v, "0") != "0" for v in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")):
            return
        for paper in sorted(p for p in papers if p):
            try:
                for f in report(paper, Path(config.paths.log_dir), use_wandb=config.logger.wandb.enabled):
                    print(f.read_text(), flush=True)
            except Exception as e:  # noqa: BLE001 - the table is a convenience after the run
                log.warning(f"could not build the {paper} tables: {e}")

    def on_job_end(self, config, job_return, **kwargs) -> None:
        from hydra.core.utils import JobStatus

        self.completed = job_return.status == JobStatus.COMPLETED
        if not self.completed:
            self.failed.append(" ".join(job_return.overrides or []) or "(no overrides)")

    def on_run_end(self, config, **kwargs) -> None:
        if self.completed:  # a failed single run filled no cell: its error stays the last thing printed
            self._build({config.get("paper")}, config)

    def on_multirun_start(self, config, **kwargs) -> None:
        self.started = time.time()
        # Hydra's sweepers raise a failed job's error once its batch has run, and on_multirun_end is then
        # never called: so the tables of the jobs that finished are built at exit unless it is.
        atexit.register(self._after_sweep, config)

    def on_multirun_end(self, config, **kwargs) -> None:
        atexit.unregister(self._after_sweep)
        self._after_sweep(config)

    def _after_sweep(self, config) -> None:
        import yaml

        papers = set()
        for meta in Path(config.paths.log_dir).rglob("run.json"):
            cfg_file = meta.parent / "config.yaml"
            if meta.stat().st_mtime >= self.started - 1 and cfg_file.exists():
                papers.add((yaml.safe_load(cfg_file.read_text()) or {}).get("paper"))
        self._build(papers, config)
        if self.failed:
            log.warning(f"{len(self.failed)} job(s) of this sweep failed ({'; '.join(self.failed[:5])}; errors above): "
                        "the tables were rebuilt from the jobs that finished.")

    # Hydra calls these too; nothing to do.
    def on_run_start(self, config, **kwargs) -> None: ...
    def on_job_start(self, config, **kwargs) -> None: ...
    def on_compile_config(self, config, **kwargs) -> None: ...


if __name__ == "__main__":
    main()
