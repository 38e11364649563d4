"""Table definitions (``experiments/<paper>/<table>.yaml``) and the runs that fill them."""
from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from omegaconf import OmegaConf

EXPERIMENTS_DIR = Path(__file__).resolve().parent
TABLE_VERSION = 1


class TableError(ValueError):
    """A table definition is malformed, or asks for something no run provides."""


@dataclass
class Column:
    label: str
    metric: str
    higher_is_better: bool | None  # None: a reference column (e.g. an exact floor), never ranked
    match: dict = field(default_factory=dict)
    fmt: str = "{:.4g}"
    scale: float = 1.0  # ours x scale, in the paper's unit (100: a fraction the runs record, a % the paper prints)


@dataclass
class Table:
    paper: str
    name: str
    title: str
    runs: list[str]
    rows: dict[str, dict]
    columns: list[Column]
    paper_values: dict[str, dict]
    paper_source: str | None
    best_of: bool  # several settings per cell (an lr sweep): report the best one
    assumes: dict = field(default_factory=dict)  # settings every run of the table has (e.g. trainer.max_steps: 300)

    @classmethod
    def load(cls, path: Path) -> "Table":
        spec = yaml.safe_load(Path(path).read_text()) or {}
        where = f"{path}"
        if spec.get("version") != TABLE_VERSION:
            raise TableError(f"{where}: version must be {TABLE_VERSION}, got {spec.get('version')!r}")
        for key in ("title", "runs", "rows", "columns"):
            if not spec.get(key):
                raise TableError(f"{where}: missing `{key}`")
        unknown = set(spec) - {"version", "title", "runs", "rows", "columns", "paper", "best_of", "assumes"}
        if unknown:
            raise TableError(f"{where}: unknown keys {sorted(unknown)}")
        columns = []
        for label, c in spec["columns"].items():
            if "metric" not in c or "higher_is_better" not in c:
                raise TableError(f"{where}: column {label!r} needs `metric` and `higher_is_better`")
            hib = c["higher_is_better"]
            if hib not in (True, False, None):
                raise TableError(f"{where}: column {label!r}: higher_is_better must be true, false or null")
            scale = c.get("scale", 1.0)
            if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale <= 0:
                raise TableError(f"{where}: column {label!r}: scale must be a positive number, got {scale!r}")
            columns.append(Column(str(label), c["metric"], hib, c.get("match") or {},
                                  c.get("format", "{:.4g}"), float(scale)))
        paper = spec.get("paper") or {}
        values = paper.get("values") or {}
        for row, cols in values.items():
            if row not in spec["rows"]:
                raise TableError(f"{where}: paper value for unknown row {row!r}")
            for col in cols or {}:
                if str(col) not in {c.label for c in columns}:
                    raise TableError(f"{where}: paper value for unknown column {col!r}")
        runs = spec["runs"] if isinstance(spec["runs"], list) else [spec["runs"]]
        assumes = spec.get("assumes") or {}
        if not isinstance(assumes, dict):
            raise TableError(f"{where}: `assumes` must map keys to values, e.g. {{trainer.max_steps: 300}}")
        return cls(Path(path).parent.name, Path(path).stem, spec["title"], runs,
                   {str(k): (v or {}) for k, v in spec["rows"].items()}, columns,
                   {str(k): {str(c): v for c, v in (cols or {}).items()} for k, cols in values.items()},
                   paper.get("source"), bool(spec.get("best_of", False)), assumes)

    @property
    def match_keys(self) -> set[str]:
        """The keys the rows, columns and assumptions match on: overrides of these do not make a
        run's setting differ from its cell's (they are what places it there)."""
        keys = set(self.assumes)
        for match in [*self.rows.values(), *(c.match for c in self.columns)]:
            keys |= set(match)
        return keys

    def misses(self, run: "Run") -> list[str]:
        """``key=value`` for each of the table's assumptions the run does not meet (its own value)."""
        return [f"{k}={run.get(k)}" for k, v in self.assumes.items() if not _same(run.get(k), v)]

    def paper_value(self, row: str, col: str):
        v = self.paper_values.get(row, {}).get(col)
        return None if v is None else float(v)


def paper_tables(paper: str) -> list[Table]:
    folder = EXPERIMENTS_DIR / paper
    files = sorted(folder.glob("*.yaml"))
    if not files:
        known = sorted(p.name for p in EXPERIMENTS_DIR.iterdir() if p.is_dir() and list(p.glob("*.yaml")))
        raise TableError(f"no tables for paper {paper!r} in {folder}; papers with tables: {known}")
    return [Table.load(f) for f in files]


@dataclass
class Run:
    path: Path
    name: str
    choices: dict
    key: str
    config: object
    results: dict

    def get(self, key: str):
        """A group choice (``method``) or a dotted config value (``method.rank``)."""
        if key in self.choices:
            return self.choices[key]
        return OmegaConf.select(self.config, key, default=None)

    def matches(self, match: dict) -> bool:
        return all(_same(self._preset_or_slot(k, v), v) for k, v in match.items())

    def _preset_or_slot(self, key: str, wanted):
        """``method: cosmos`` in a table also matches a run that chose ``optimizer=cosmos`` (the preset's
        slot); any other key is `get`."""
        if key == "method" and self.choices.get("method") is None and isinstance(wanted, str):
            from reprolab.registry import role_of

            role = role_of(wanted)
            return self.choices.get(role) if role else None
        return self.get(key)

    @property
    def seed(self):
        """The run's seed (its config, else its folder key's ``seed=``); None when neither says."""
        seed = self.get("seed")
        if seed is None:
            seed = next((p.split("=", 1)[1] for p in self.key.split(",") if p.startswith("seed=")), None)
        return seed

    def setting_beyond(self, keys: set[str]) -> str:
        """The run's overrides minus the seed and minus ``keys`` (a table's `match_keys`): runs of one
        cell with equal settings beyond them are repeats or seeds of one configuration."""
        parts = [p for p in self.key.split(",") if p and not p.startswith("seed=")]
        return ",".join(p for p in parts if p.split("=", 1)[0].lstrip("+~") not in keys) or "default"

    @property
    def setting(self) -> str:
        """The run's key (the overrides that name its folder) minus the seed: runs with equal
        settings are seeds of one configuration."""
        return ",".join(p for p in self.key.split(",") if p and not p.startswith("seed=")) or "default"


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9)
    return str(a) == str(b)


def load_runs(root: Path) -> list[Run]:
    """Every finished run (a run.json with status complete and a results.json) under ``root``."""
    runs = []
    for meta_file in sorted(Path(root).rglob("run.json")):
        folder = meta_file.parent
        meta = json.loads(meta_file.read_text())
        if meta.get("status") != "complete" or not (folder / "results.json").exists():
            continue
        cfg = OmegaConf.load(folder / "config.yaml") if (folder / "config.yaml").exists() else OmegaConf.create()
        runs.append(Run(folder, meta.get("name") or "", meta.get("choices", {}), meta.get("key", ""), cfg,
                        json.loads((folder / "results.json").read_text())))
    return runs


def runs_for(table: Table, runs: list[Run]) -> list[Run]:
    return [r for r in runs if any(fnmatch.fnmatchcase(r.name, pat) for pat in table.runs)]
