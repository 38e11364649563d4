"""Named validation helpers for config schemas and plugin constructors.

Each helper names the key as the user would type it and says what would be accepted, e.g.
``method.lr=-0.1 is out of range: it must be > 0``.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from hydra.errors import CompactHydraException


class UserError(CompactHydraException):
    """An error whose message says what is wrong and how to fix it; `run.py` prints it without a
    traceback (set HYDRA_FULL_ERROR=1 to see one)."""


class ConfigError(UserError, ValueError):
    """A config value is invalid. The message names the key, the value and the fix."""


class DataFileNotFoundError(UserError, FileNotFoundError):
    """A data file is missing; the message says which path and how to point paths.data_dir at it."""


def _fail(key: str, value: Any, need: str) -> None:
    raise ConfigError(f"{key}={value!r} is out of range: it must be {need}.")


def positive(key: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        _fail(key, value, "> 0")


def non_negative(key: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        _fail(key, value, ">= 0")


def in_range(key: str, value: float, lo: float, hi: float, *, lo_open=False, hi_open=False) -> None:
    ok_lo = value > lo if lo_open else value >= lo
    ok_hi = value < hi if hi_open else value <= hi
    if not (isinstance(value, (int, float)) and ok_lo and ok_hi):
        _fail(key, value, f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}")


def one_of(key: str, value: Any, options: Iterable[Any]) -> None:
    options = list(options)
    if value not in options:
        raise ConfigError(f"{key}={value!r} is not one of {options}.")


def betas(key: str, value: Iterable[float], n: int | None = None) -> None:
    """Each beta in [0, 1); ``n`` checks the count."""
    value = list(value)
    if n is not None and len(value) != n:
        raise ConfigError(f"{key}={value} must have {n} entries.")
    for i, b in enumerate(value):
        in_range(f"{key}[{i}]", b, 0.0, 1.0, hi_open=True)
