"""What a paper's W&B dashboard shows: one section per table (``experiments/<paper>/<table>.yaml``), with
the curves behind it named by a small panel spec in ``experiments/<paper>/dashboard.py`` (optional):

    from experiments.dashboard.spec import Line, Panels, Scatter

    PROBE = ["experiment=nag_mf_kappa_sweep", "runner.max_steps=20"]  # a tiny run logging every key the panels read
    COMMANDS = ["python run.py -m experiment=nag_mf_kappa_sweep"]     # how the runs were made (or per table)
    TABLES = {
        "kappa_sweep": Panels(groupby=("method.algorithm", "problem.d"), plots=(
            Scatter("config:problem.kappa", "summary:table/iters_to_eps", log_x=True, log_y=True, groupby=()),
            Line(["train/rel_err"], log_y=True),
        )),
    }

`Line` reads history keys (``x`` defaults to W&B's ``Step``), `Scatter` and `Bar` read ``summary:`` or
``config:`` keys (one point or bar per run, or per group). ``groupby`` names table keys: group choices
(``method``, ``runner/task``) or dotted config keys (``problem.d``). A table the spec does not name gets
one bar plot per metric of its columns, grouped by what its rows and columns match on.
"""
from __future__ import annotations

import fnmatch
import importlib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import yaml

from experiments.tables import EXPERIMENTS_DIR, Table, TableError, paper_tables

STEP = "Step"  # W&B's own step axis (the numeric and generate runners log with step=; Lightning logs trainer/global_step)


@dataclass(frozen=True)
class Key:
    """A metric a panel reads: ``history`` (per step), ``summary`` (final value) or ``config``."""

    section: str
    name: str

    @classmethod
    def parse(cls, text: str, default: str) -> "Key":
        section, sep, name = str(text).partition(":")
        if sep and section in ("history", "summary", "config"):
            return cls(section, name)
        return cls(default, str(text))

    def __str__(self) -> str:
        return f"{self.section}:{self.name}"


@dataclass(frozen=True)
class Plot:
    """One panel of a section. Build it with `Line`, `Scatter` or `Bar`."""

    kind: str  # line, scatter or bar
    x: Key | None
    y: tuple[Key, ...]
    title: str | None = None
    groupby: tuple[str, ...] | None = None  # None: the section's
    log_x: bool = False
    log_y: bool = False

    def __post_init__(self):
        if not self.y:
            raise TableError(f"a {self.kind} plot needs at least one y metric")
        for k in (self.x, *self.y):
            if k is None or k.name == STEP:
                continue
            if self.kind == "line" and k.section != "history":
                raise TableError(f"a line plot reads history keys, got {k}: use Scatter or Bar for summary/config keys")
            if self.kind != "line" and k.section == "history":
                raise TableError(f"a {self.kind} plot reads summary: or config: keys, got {k}")

    @property
    def label(self) -> str:
        return self.title or ", ".join(k.name for k in self.y)

    def keys(self) -> list[Key]:
        return [k for k in (self.x, *self.y) if k is not None and k.name != STEP]


def _names(y) -> list[str]:
    return [y] if isinstance(y, str) else list(y)


def Line(y, x: str = STEP, title: str | None = None, groupby=None, log_x=False, log_y=False) -> Plot:  # noqa: N802
    """History metrics ``y`` against ``x`` (a history key, or W&B's ``Step``), one line per group (mean ± std)."""
    return Plot("line", Key.parse(x, "history"), tuple(Key.parse(v, "history") for v in _names(y)), title,
                None if groupby is None else tuple(groupby), log_x, log_y)


def Scatter(x: str, y: str, title: str | None = None, groupby=None, log_x=False, log_y=False) -> Plot:  # noqa: N802
    """A summary or config key against another (``config:problem.kappa``, ``summary:table/iters_to_eps``)."""
    return Plot("scatter", Key.parse(x, "summary"), (Key.parse(y, "summary"),), title,
                None if groupby is None else tuple(groupby), log_x, log_y)


def Bar(y, title: str | None = None, groupby=None) -> Plot:  # noqa: N802
    """Final (summary) values, one bar per group (mean ± std over its runs)."""
    return Plot("bar", None, tuple(Key.parse(v, "summary") for v in _names(y)), title,
                None if groupby is None else tuple(groupby))


@dataclass(frozen=True)
class Panels:
    """A table's section in a paper's spec: its grouping, plots and (optionally) its own commands."""

    plots: tuple[Plot, ...] = ()
    groupby: tuple[str, ...] | None = None  # None: what the table's rows and columns match on
    commands: tuple[str, ...] = ()


@dataclass(frozen=True)
class Experiment:
    """An experiment file of conf/experiment: the run name, W&B group and paper it sets (or inherits)."""

    choice: str  # experiment=<choice>
    name: str | None
    group: str | None
    paper: str | None


@dataclass
class Section:
    table: Table
    plots: list[Plot]  # each with its groupby filled in
    commands: list[str]
    experiments: list[Experiment]  # those whose runs fill the table

    @property
    def groups(self) -> list[str]:
        return sorted({e.group for e in self.experiments if e.group})

    @property
    def names(self) -> list[str]:
        return sorted({e.name for e in self.experiments})


@dataclass
class Dashboard:
    paper: str
    sections: list[Section]
    probe: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    spec: str | None = None  # the spec module, None where the paper has none


def _conf_dir() -> Path:
    from reprolab.registry import CONF_DIR

    return Path(CONF_DIR)


def is_group(key: str) -> bool:
    """A table key that names a config group (``data``, ``runner/task``, ``problem``; ``method``, the preset
    group the registry fills), not a config value."""
    return key == "method" or ("." not in key and (_conf_dir() / key).is_dir())


def config_key(key: str) -> str:
    """The W&B config key of a table key: group choices are logged under ``choices`` (reprolab.tracking)."""
    return f"choices.{key}" if is_group(key) else key


@lru_cache(maxsize=1)
def experiments() -> tuple[Experiment, ...]:
    """Every experiment file, with the ``name``, ``group`` and ``paper`` it sets or inherits from the experiment
    files in its defaults (merged in Hydra's order: later entries win, the file itself at ``_self_``, else last)."""
    root = _conf_dir() / "experiment"
    raw = {p.relative_to(root).with_suffix("").as_posix(): yaml.safe_load(p.read_text()) or {}
           for p in root.rglob("*.yaml")}

    def resolved(choice: str, seen=()) -> dict:
        own = {k: raw[choice][k] for k in ("name", "group", "paper") if k in raw[choice]}
        entries = [e for e in raw[choice].get("defaults") or [] if isinstance(e, str)]
        out = {}
        for entry in entries + ([] if "_self_" in entries else ["_self_"]):
            if entry == "_self_":
                out.update(own)
                continue
            ref = entry.removeprefix("/experiment/") if entry.startswith("/") else \
                (Path(choice).parent / entry).as_posix().removeprefix("./")
            if ref in raw and ref not in seen:
                out.update(resolved(ref, (*seen, choice)))
        return out

    return tuple(Experiment(c, *(resolved(c).get(k) for k in ("name", "group", "paper"))) for c in sorted(raw))


def table_experiments(table: Table) -> list[Experiment]:
    return [e for e in experiments() if e.name and any(fnmatch.fnmatchcase(e.name, pat) for pat in table.runs)]


def default_groupby(table: Table) -> tuple[str, ...]:
    """What the table's rows and columns match on (one line or bar per cell; seeds are averaged)."""
    keys: list[str] = []
    for match in [*table.rows.values(), *(c.match for c in table.columns)]:
        keys += [k for k in match if k not in keys]
    return tuple(keys)


def default_plots(table: Table) -> tuple[Plot, ...]:
    """One bar plot per metric of the table's columns (each run's final value, mean ± std over seeds)."""
    return tuple(Bar(m) for m in dict.fromkeys(c.metric for c in table.columns))


def spec_module(paper: str):
    """``experiments/<paper>/dashboard.py`` imported, or None where the paper has none."""
    if not (EXPERIMENTS_DIR / paper / "dashboard.py").exists():
        return None
    return importlib.import_module(f"experiments.{paper}.dashboard")


def load(paper: str) -> Dashboard:
    """The paper's dashboard: one section per table, with the spec's plots where it names the table and
    the default bar plots elsewhere. Raises `TableError` for a spec naming a table the paper lacks."""
    tables = paper_tables(paper)
    module = spec_module(paper)
    specs: dict[str, Panels] = dict(getattr(module, "TABLES", {}) or {})
    where = f"experiments/{paper}/dashboard.py"
    known = {t.name for t in tables}
    for name, panels in specs.items():
        if name not in known:
            raise TableError(f"{where}: TABLES names {name!r}, not a table of {paper} (its tables: {sorted(known)})")
        if not isinstance(panels, Panels):
            raise TableError(f"{where}: TABLES[{name!r}] must be a Panels(...), got {type(panels).__name__}")
    commands = list(getattr(module, "COMMANDS", []) or [])
    sections = []
    for table in tables:
        panels = specs.get(table.name, Panels())
        groupby = default_groupby(table) if panels.groupby is None else panels.groupby
        plots = [p if p.groupby is not None else replace(p, groupby=groupby) for p in (panels.plots or default_plots(table))]
        exps = table_experiments(table)
        cmds = list(panels.commands) or commands or [f"python run.py -m experiment={e.choice}" for e in exps]
        sections.append(Section(table, plots, cmds + [f"python -m experiments.report {paper}"], exps))
    return Dashboard(paper, sections, list(getattr(module, "PROBE", []) or []), commands,
                     module.__name__ if module else None)


def papers() -> list[str]:
    """Every paper with table definitions."""
    return sorted(p.name for p in EXPERIMENTS_DIR.iterdir() if p.is_dir() and any(p.glob("*.yaml")))
